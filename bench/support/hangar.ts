/**
 * A Hangar server for the benchmark: a child process on a temporary data dir
 * and a free port, driven through its public API as any client would.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import * as tar from "tar";
import { freePort } from "../../src/runtime/ports.ts";
import { type Spawned, spawnNode, trackFolder, trackProcessGroup } from "./processes.ts";

export interface BenchHangar {
  url: string;
  port: number;
  key: string;
  process: Spawned;
}

// biome-ignore lint/suspicious/noExplicitAny: GraphQL answers are read loosely here.
type Json = any;

/** An error that ends a poll at once. */
class Fatal extends Error {}

async function poll<T>(what: string, timeoutMs: number, check: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown = null;
  for (;;) {
    try {
      const value = await check();
      if (value !== null) return value;
    } catch (error) {
      if (error instanceof Fatal) throw error;
      lastError = error;
    }
    if (Date.now() > deadline) {
      const detail = lastError instanceof Error ? ` (last error: ${lastError.message})` : "";
      throw new Error(`timed out waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function startHangar(
  options: { logLevel?: string; nodeArgs?: string[]; env?: Record<string, string> } = {},
): Promise<BenchHangar> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "hangar-bench-"));
  trackFolder(dataDir);
  const port = await freePort();
  const key = `hk_bench_${randomBytes(16).toString("hex")}`;
  // Node flags go on the command line: Hangar's replicas are spawned without them.
  const child = spawnNode("hangar", [...(options.nodeArgs ?? []), "bin/hangar.mjs", "serve"], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? tmpdir(),
      PORT: String(port),
      HOST: "127.0.0.1",
      HANGAR_DATA_DIR: dataDir,
      HANGAR_ADMIN_KEY: key,
      HANGAR_LOG_LEVEL: options.logLevel ?? "warn",
      ...options.env,
    },
    // Hangar drains and stops its replicas before it exits.
    graceMs: 30_000,
  });
  const url = `http://127.0.0.1:${port}`;
  await poll("Hangar to become healthy", 120_000, async () => {
    if (child.child.exitCode !== null) throw new Fatal("Hangar exited during start");
    const response = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(5_000) }).catch(() => null);
    return response?.status === 200 ? true : null;
  }).catch((error: Error) => {
    throw new Error(`${error.message}\n${child.output()}`);
  });
  return { url, port, key, process: child };
}

export async function gql(hangar: BenchHangar, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(`${hangar.url}/graphql`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
    body: JSON.stringify({ query, variables }),
    signal: AbortSignal.timeout(30_000),
  });
  const body = (await response.json()) as { data?: Json; errors?: unknown[] };
  if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data as Json;
}

/** Writes a model folder from a map of file name to content. */
export async function modelFolder(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "hangar-bench-model-"));
  trackFolder(dir);
  for (const [name, content] of Object.entries(files)) await writeFile(path.join(dir, name), content);
  return dir;
}

async function pack(dir: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of tar.create({ gzip: true, cwd: dir, portable: true }, await readdir(dir))) {
    chunks.push(Buffer.from(chunk as Uint8Array));
  }
  return Buffer.concat(chunks);
}

const PUSH = `
  mutation Push($input: PushDeploymentInput!) {
    pushDeployment(input: $input) {
      __typename
      ... on Deployment { id status model { id } }
      ... on UserError { code message field }
    }
  }`;

/** pushDeployment of a folder (GraphQL multipart upload); the new deployment's and model's ids. */
export async function pushFolder(
  hangar: BenchHangar,
  modelName: string,
  dir: string,
): Promise<{ deploymentId: string; modelId: string }> {
  const form = new FormData();
  form.set("operations", JSON.stringify({ query: PUSH, variables: { input: { modelName, source: null } } }));
  form.set("map", JSON.stringify({ "0": ["variables.input.source"] }));
  form.set("0", new Blob([new Uint8Array(await pack(dir))], { type: "application/gzip" }), "model.tar.gz");
  const response = await fetch(`${hangar.url}/graphql`, {
    method: "POST",
    headers: { authorization: `Bearer ${hangar.key}`, "graphql-require-preflight": "1" },
    body: form,
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  let result: Json = null;
  try {
    result = JSON.parse(text).data?.pushDeployment;
  } catch {
    // Reported below.
  }
  if (result?.__typename !== "Deployment") throw new Error(`push failed (HTTP ${response.status}): ${text}`);
  return { deploymentId: result.id, modelId: result.model.id };
}

/**
 * Pins the deployment to exactly one replica, so that the autoscaler neither
 * adds replicas under load nor scales to zero while other targets are measured.
 */
export async function pinOneReplica(hangar: BenchHangar, deploymentId: string): Promise<void> {
  const data = await gql(
    hangar,
    `mutation($input: UpdateAutoscalingInput!) {
      updateAutoscalingSettings(input: $input) {
        __typename
        ... on Deployment { autoscalingSettings { minReplica maxReplica } }
        ... on Error { message }
      }
    }`,
    { input: { deploymentId, settings: { minReplica: 1, maxReplica: 1 } } },
  );
  const result = data.updateAutoscalingSettings;
  if (result?.__typename !== "Deployment") {
    throw new Error(`updateAutoscalingSettings failed: ${JSON.stringify(result)}`);
  }
}

export async function waitForActive(hangar: BenchHangar, deploymentId: string, timeoutMs = 120_000) {
  let last = "";
  await poll(`deployment ${deploymentId} to be ACTIVE`, timeoutMs, async () => {
    const data = await gql(hangar, "query($id: ID!) { deployment(id: $id) { status } }", {
      id: deploymentId,
    });
    last = data.deployment?.status ?? "missing";
    if (/FAILED|UNHEALTHY|DELETED|INACTIVE/.test(last)) throw new Fatal(`deployment is ${last}`);
    return last === "ACTIVE" ? true : null;
  }).catch(async (error: Error) => {
    const logs = await deploymentLogs(hangar, deploymentId).catch(() => []);
    throw new Error(`${error.message}; last status ${last}; logs:\n${logs.join("\n")}`);
  });
}

async function deploymentLogs(hangar: BenchHangar, deploymentId: string): Promise<string[]> {
  const data = await gql(hangar, "query($id: ID!) { deployment(id: $id) { logs(last: 500) { line } } }", {
    id: deploymentId,
  });
  return (data.deployment?.logs ?? []).map((l: { line: string }) => l.line);
}

/**
 * The replica's own pid. The API does not expose it; the runtime logs
 * "replica started (pid N)", which is good enough for a benchmark. Its
 * process group is tracked, so that it is stopped even if Hangar is not.
 */
export async function replicaOf(hangar: BenchHangar, deploymentId: string): Promise<{ pid: number }> {
  return poll(`the replica of ${deploymentId} in its logs`, 30_000, async () => {
    const started = (await deploymentLogs(hangar, deploymentId))
      .map((line) => /replica started \(pid (\d+)/.exec(line))
      .filter((match) => match !== null);
    for (const match of started) trackProcessGroup(Number(match[1]));
    const last = started[started.length - 1];
    return last ? { pid: Number(last[1]) } : null;
  });
}
