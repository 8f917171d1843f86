import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Client, createClient } from "graphql-ws";
import * as tar from "tar";
import WebSocket from "ws";
import type { TestHangar } from "./hangar.ts";
import { fail, WaitAborted, waitFor } from "./wait.ts";

export interface GqlResult<T = Record<string, unknown>> {
  data?: T;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

// biome-ignore lint/suspicious/noExplicitAny: test responses are inspected loosely.
type Json = any;

/**
 * A GraphQL answer with errors: the operation is wrong, or refused, and asking again will not change
 * that, so a `waitFor` polling it ends at once (it is a WaitAborted).
 */
export class GraphQLAnswerError extends WaitAborted {
  override name = "GraphQLAnswerError";
}

export async function gql(
  hangar: TestHangar,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<Json> {
  const response = await fetch(`${hangar.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as GqlResult<Json>;
  if (body.errors) throw new GraphQLAnswerError(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** The raw answer, errors included. */
export async function gqlRaw(hangar: TestHangar, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(`${hangar.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: response.status, body: (await response.json()) as GqlResult<Json> };
}

/** Writes a model folder from a map of file name to content. */
export async function modelFolder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "hangar-model-"));
  for (const [name, content] of Object.entries(files)) {
    await writeFile(path.join(dir, name), content);
  }
  return dir;
}

/** A gzip'd tar of the folder's contents. */
export async function pack(dir: string): Promise<Buffer> {
  const entries = await readdir(dir);
  const chunks: Buffer[] = [];
  for await (const chunk of tar.create({ gzip: true, cwd: dir, portable: true }, entries)) {
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}

export const PUSH_MUTATION = `
  mutation Push($input: PushDeploymentInput!) {
    pushDeployment(input: $input) {
      __typename
      ... on Deployment { id name kind status model { id name } }
      ... on UserError { code message field }
    }
  }`;

/** pushDeployment by multipart upload, as the CLI does. */
export const PATCH_MUTATION = `
  mutation Patch($input: PatchDevelopmentInput!) {
    patchDevelopmentDeployment(input: $input) {
      __typename
      ... on PatchDevelopment { applied needsFullDeploy error deployment { id status } }
      ... on UserError { code message field }
    }
  }`;

/** patchDevelopmentDeployment by multipart upload. */
export async function patch(hangar: TestHangar, modelId: string, archive: Buffer): Promise<Json> {
  const { body } = await upload(hangar, PATCH_MUTATION, { modelId }, archive);
  if (!body.data) throw new Error(`patch failed: ${JSON.stringify(body)}`);
  return body.data.patchDevelopmentDeployment;
}

/** pushDeployment by multipart upload, as the CLI does. */
export function push(
  hangar: TestHangar,
  input: { modelName: string; development?: boolean; deploymentName?: string },
  archive: Buffer,
  headers: Record<string, string> = { "graphql-require-preflight": "1" },
): Promise<{ status: number; body: GqlResult<Json> }> {
  return upload(hangar, PUSH_MUTATION, input, archive, headers);
}

/** A mutation whose `input.source` is the archive, per the GraphQL multipart request spec. */
async function upload(
  hangar: TestHangar,
  query: string,
  input: Record<string, unknown>,
  archive: Buffer,
  headers: Record<string, string> = { "graphql-require-preflight": "1" },
): Promise<{ status: number; body: GqlResult<Json> }> {
  const form = new FormData();
  form.set("operations", JSON.stringify({ query, variables: { input: { ...input, source: null } } }));
  form.set("map", JSON.stringify({ "0": ["variables.input.source"] }));
  form.set("0", new Blob([new Uint8Array(archive)], { type: "application/gzip" }), "model.tar.gz");
  const response = await fetch(`${hangar.url}/graphql`, {
    method: "POST",
    headers: { authorization: `Bearer ${hangar.key}`, ...headers },
    body: form,
  });
  const text = await response.text();
  let body: GqlResult<Json>;
  try {
    body = JSON.parse(text) as GqlResult<Json>;
  } catch {
    body = { errors: [{ message: text }] };
  }
  return { status: response.status, body };
}

/** Pushes a folder and returns the new deployment (failing the test on a UserError). */
export async function pushFolder(
  hangar: TestHangar,
  modelName: string,
  dir: string,
  opts: { development?: boolean; deploymentName?: string } = {},
): Promise<Json> {
  const { body } = await push(hangar, { modelName, ...opts }, await pack(dir));
  const result = body.data?.pushDeployment;
  if (result?.__typename !== "Deployment") throw new Error(`push failed: ${JSON.stringify(body)}`);
  return result;
}

export async function deploymentStatus(hangar: TestHangar, id: string): Promise<string> {
  const data = await gql(hangar, "query($id: ID!) { deployment(id: $id) { status } }", { id });
  return data.deployment.status;
}

/** Statuses a deployment leaves only when told to (activate, a new push): waiting for another is hopeless. */
const STUCK = ["BUILD_FAILED", "DEPLOY_FAILED", "UNHEALTHY", "FAILED", "DELETED"];

/** Waits for the deployment's status; gives up at once when it is stuck in another (STUCK). */
export async function waitForStatus(hangar: TestHangar, id: string, status: string, timeoutMs = 30_000) {
  let last = "";
  await waitFor(
    async () => {
      last = await deploymentStatus(hangar, id);
      if (last !== status && STUCK.includes(last)) fail(`deployment ${id} is ${last}`);
      return last === status;
    },
    { timeoutMs, what: `deployment ${id} to be ${status}` },
  ).catch((error: Error) => {
    if (error instanceof WaitAborted) throw error;
    throw new Error(`${error.message}; last status ${last}`);
  });
}

export async function predict(hangar: TestHangar, urlPath: string, body: unknown, key = hangar.key) {
  const response = await fetch(`${hangar.url}${urlPath}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const deploymentId = response.headers.get("x-hangar-deployment-id");
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    // The answer began (status and headers sent) and was cut: say whose it was.
    throw new CutAnswer(deploymentId, error);
  }
  let json: Json = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: response.status, body: json, deploymentId };
}

/** A predict answer whose body broke off after its headers came. */
export class CutAnswer extends Error {
  constructor(
    readonly deploymentId: string | null,
    cause: unknown,
  ) {
    super(`the answer was cut: ${(cause as Error).message}`, { cause });
  }
}

export function wsClient(hangar: TestHangar, authorization = `Bearer ${hangar.key}`): Client {
  return createClient({
    url: `${hangar.url.replace("http", "ws")}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization },
    retryAttempts: 0,
    lazy: true,
  });
}

/** Subscribes and collects payloads until `until` says enough (or the deadline passes). */
export function subscribe(client: Client, query: string, variables: Record<string, unknown>) {
  const items: Json[] = [];
  const errors: unknown[] = [];
  let completed = false;
  const dispose = client.subscribe<Json>(
    { query, variables },
    {
      next: (value) => {
        if (value.errors) errors.push(value.errors);
        else items.push(value.data);
      },
      error: (error) => errors.push(error),
      complete: () => {
        completed = true;
      },
    },
  );
  return {
    items,
    errors,
    get completed() {
      return completed;
    },
    dispose,
    until: (check: (items: Json[]) => boolean, timeoutMs = 30_000) =>
      waitFor(
        () => {
          if (errors.length > 0) fail(`subscription error: ${JSON.stringify(errors)}`);
          if (check(items)) return true;
          // A completed subscription sends nothing more.
          if (completed) fail(`the subscription completed; items: ${JSON.stringify(items)}`);
          return false;
        },
        { timeoutMs, what: "subscription items" },
      ),
  };
}
