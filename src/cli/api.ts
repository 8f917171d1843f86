import type { Client } from "graphql-ws/client";
import { CliError, errorForCode, forbiddenError, hasHint, type KeyIdentity } from "./errors.ts";
import type { Target } from "./target.ts";

export interface ApiOptions {
  /** Deadline for one GraphQL query or mutation (default 60 s). */
  timeoutMs?: number;
  /** Deadline for an upload (default 10 min). */
  uploadTimeoutMs?: number;
}

interface GraphQLError {
  message: string;
  extensions?: { code?: unknown };
}

interface GraphQLResponse {
  data?: unknown;
  errors?: GraphQLError[];
}

/** The Hangar server as the CLI sees it: GraphQL over HTTP and WebSocket, and the inference gateway. */
export class HangarApi {
  readonly url: string;
  private readonly apiKey: string;
  private readonly options: Required<ApiOptions>;
  private ws: Promise<Client> | null = null;
  private identity: Promise<KeyIdentity | null> | null = null;

  constructor(target: Target, options: ApiOptions = {}) {
    this.url = target.url.replace(/\/+$/, "");
    this.apiKey = target.apiKey;
    this.options = { timeoutMs: 60_000, uploadTimeoutMs: 600_000, ...options };
  }

  /** A query or mutation, sent as JSON. */
  async query<T>(document: string, variables: Record<string, unknown> = {}): Promise<T> {
    const response = await this.send(
      "/graphql",
      {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.apiKey}` },
        body: JSON.stringify({ query: document, variables }),
      },
      this.options.timeoutMs,
    );
    return this.graphqlResult<T>(response);
  }

  /** A mutation carrying one file, per the GraphQL multipart request spec. */
  async upload<T>(
    document: string,
    variables: Record<string, unknown>,
    file: { variable: string; data: Uint8Array; filename: string },
  ): Promise<T> {
    const withNull = setPath(structuredClone(variables), file.variable.split("."), null);
    const form = new FormData();
    form.set("operations", JSON.stringify({ query: document, variables: withNull }));
    form.set("map", JSON.stringify({ "0": [`variables.${file.variable}`] }));
    form.set(
      "0",
      new Blob([file.data as Uint8Array<ArrayBuffer>], { type: "application/gzip" }),
      file.filename,
    );
    const response = await this.send(
      "/graphql",
      {
        method: "POST",
        headers: { authorization: `Bearer ${this.apiKey}`, "graphql-require-preflight": "1" },
        body: form,
      },
      this.options.uploadTimeoutMs,
    );
    return this.graphqlResult<T>(response);
  }

  /**
   * A subscription over graphql-ws. `onData` runs for each payload in order (the next one waits for it);
   * `done` resolves when the server completes the subscription or `close()` is called, and rejects with
   * a CliError on GraphQL errors, a refused key, a lost connection, or when `onData` throws.
   */
  subscribe<T>(
    document: string,
    variables: Record<string, unknown>,
    onData: (data: T) => void | Promise<void>,
  ): { done: Promise<void>; close(): void } {
    let settled = false;
    let dispose: (() => void) | null = null;
    let chain: Promise<void> = Promise.resolve();
    let resolveDone!: () => void;
    let rejectDone!: (error: unknown) => void;
    const done = new Promise<void>((resolve, reject) => {
      resolveDone = resolve;
      rejectDone = reject;
    });
    const finish = (error?: unknown) => {
      if (settled) return;
      settled = true;
      dispose?.();
      if (error === undefined) resolveDone();
      else rejectDone(error);
    };
    // The WebSocket client is loaded on first use: most commands never subscribe.
    this.socket().then((client) => {
      if (settled) return;
      dispose = client.subscribe<T>(
        { query: document, variables },
        {
          next: (value) => {
            if (value.errors?.length) {
              const errors = value.errors as readonly GraphQLError[];
              // After the payloads before it; naming a refused key takes a request.
              chain = chain.then(() => this.errorFor(errors, "")).then(finish, finish);
              return;
            }
            chain = chain.then(() => (settled ? undefined : onData(value.data as T))).catch(finish);
          },
          error: (error) => {
            if (Array.isArray(error)) void this.errorFor(error as GraphQLError[], "").then(finish, finish);
            else finish(this.socketError(error));
          },
          complete: () => {
            void chain.then(() => finish());
          },
        },
      );
      // The sink may have ended the subscription before client.subscribe returned.
      if (settled) dispose();
    }, finish);
    return { done, close: () => finish() };
  }

  /**
   * POST url+path with the key and a JSON body (the inference gateway). Any HTTP status is returned,
   * except 401, which throws the same refused-key error as the GraphQL calls, and 403 `forbidden`, which
   * throws the same permission error as a GraphQL FORBIDDEN. `body` is the answer parsed as JSON (the
   * text when it is not JSON); `text` is the answer as it came.
   */
  async gateway(
    path: string,
    body: unknown,
  ): Promise<{ status: number; headers: Headers; body: unknown; text: string }> {
    const response = await this.send(
      path,
      {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${this.apiKey}` },
        body: JSON.stringify(body),
      },
      null,
    );
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: returned as text
    }
    const refusal = parsed as { error?: unknown; error_code?: unknown } | null;
    if (response.status === 403 && typeof refusal === "object" && refusal?.error_code === "forbidden") {
      throw forbiddenError(await this.whoAmI(), String(refusal.error ?? ""), "forbidden");
    }
    return { status: response.status, headers: response.headers, body: parsed, text };
  }

  /** Closes the WebSocket, if one was opened. */
  async close(): Promise<void> {
    const ws = this.ws;
    this.ws = null;
    if (ws) await (await ws.catch(() => null))?.dispose();
  }

  private refusedKey(): CliError {
    return new CliError(
      `the server at ${this.url} refused the API key: check --api-key or HANGAR_API_KEY, ` +
        "or run `hangar login --url URL --api-key KEY` again",
    );
  }

  private unreachable(detail: string): CliError {
    return new CliError(`cannot reach Hangar at ${this.url}: ${detail} (is the server running? check --url)`);
  }

  private async send(path: string, init: RequestInit, timeoutMs: number | null): Promise<Response> {
    let response: Response;
    try {
      response = await fetch(`${this.url}${path}`, {
        ...init,
        ...(timeoutMs === null ? {} : { signal: AbortSignal.timeout(timeoutMs) }),
      });
    } catch (error) {
      throw this.unreachable(describeFetchError(error, timeoutMs));
    }
    if (response.status === 401) {
      await response.body?.cancel();
      throw this.refusedKey();
    }
    return response;
  }

  private async graphqlResult<T>(response: Response): Promise<T> {
    const text = await response.text();
    let body: GraphQLResponse;
    try {
      body = JSON.parse(text) as GraphQLResponse;
    } catch {
      throw new CliError(
        `${this.url} did not answer like a Hangar server (HTTP ${response.status}${
          text ? `: ${text.slice(0, 200).trim()}` : ""
        }): check --url`,
      );
    }
    if (body.errors?.length) throw await this.errorFor(body.errors);
    if (!response.ok || body.data === undefined || body.data === null) {
      throw new CliError(
        `${this.url} did not answer like a Hangar server (HTTP ${response.status}: ${text.slice(0, 200).trim()}): check --url`,
      );
    }
    return body.data as T;
  }

  /**
   * The CliError for a response's GraphQL errors: a permission refusal names the key and its role, an
   * error whose extensions.code has a hint (QUERY_TOO_COMPLEX) carries it, others are passed on.
   */
  private async errorFor(errors: readonly GraphQLError[], prefix = "the server answered with an error: ") {
    const messages = (list: readonly GraphQLError[]) => [...new Set(list.map((e) => e.message))].join("; ");
    const forbidden = errors.filter((e) => e.extensions?.code === "FORBIDDEN");
    if (forbidden.length > 0) return forbiddenError(await this.whoAmI(), messages(forbidden));
    const code = errors[0]?.extensions?.code;
    // Codes without a hint (say, GRAPHQL_VALIDATION_FAILED) read as before, without a bracket.
    if (typeof code === "string" && hasHint(code) && errors.every((e) => e.extensions?.code === code)) {
      return errorForCode(code, messages(errors));
    }
    return new CliError(`${prefix}${messages(errors)}`);
  }

  /**
   * The key's name and role (`viewer`, which every valid key may read), asked once, for the message of
   * a permission refusal; null when the server cannot say. Sent on its own, not through query(), whose
   * errors would come back here.
   */
  private whoAmI(): Promise<KeyIdentity | null> {
    this.identity ??= (async () => {
      try {
        const response = await this.send(
          "/graphql",
          {
            method: "POST",
            headers: { "content-type": "application/json", authorization: `Bearer ${this.apiKey}` },
            body: JSON.stringify({ query: "query Viewer { viewer { name role } }" }),
          },
          this.options.timeoutMs,
        );
        const body = (await response.json()) as { data?: { viewer?: KeyIdentity | null } | null };
        const viewer = body.data?.viewer;
        return viewer && typeof viewer.name === "string" && typeof viewer.role === "string" ? viewer : null;
      } catch {
        return null;
      }
    })();
    return this.identity;
  }

  private connected = false;
  private lastSocketError: string | null = null;
  private onConnected: Array<() => void> = [];

  /**
   * Resolves once the WebSocket is connected and acknowledged (after a subscribe call opened it).
   * Race it with the subscription's `done`, which rejects when the connection fails.
   */
  whenConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => this.onConnected.push(resolve));
  }

  private socket(): Promise<Client> {
    this.ws ??= this.createSocket();
    return this.ws;
  }

  private async createSocket(): Promise<Client> {
    const [{ createClient }, { default: WebSocket }] = await Promise.all([
      import("graphql-ws/client"),
      import("ws"),
    ]);
    return createClient({
      url: `${this.url.replace(/^http/, "ws")}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${this.apiKey}` },
      retryAttempts: 0,
      lazy: true,
      on: {
        connected: () => {
          this.connected = true;
          for (const resolve of this.onConnected.splice(0)) resolve();
        },
        error: (error) => {
          this.lastSocketError = describeSocketError(error);
        },
      },
    });
  }

  private socketError(error: unknown): CliError {
    if (error instanceof CliError) return error;
    if (Array.isArray(error)) {
      return new CliError(error.map((e: { message?: string }) => e.message ?? String(e)).join("; "));
    }
    if (isCloseEvent(error)) {
      if (error.code === 4401 || error.code === 4403) return this.refusedKey();
      if (!this.connected)
        return this.unreachable(this.lastSocketError ?? `WebSocket closed (${error.code})`);
      return new CliError(
        `lost the connection to Hangar at ${this.url} (WebSocket closed with ${error.code}${
          error.reason ? `: ${error.reason}` : ""
        })`,
      );
    }
    const message = describeSocketError(error);
    return this.connected ? new CliError(`WebSocket error: ${message}`) : this.unreachable(message);
  }
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}

function describeSocketError(error: unknown): string {
  const inner = (error as { error?: unknown })?.error ?? error;
  if (inner instanceof Error) return describeErrno(inner);
  const message = (error as { message?: unknown })?.message;
  return typeof message === "string" && message ? message : "WebSocket connection failed";
}

const ERRNO: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
  UND_ERR_CONNECT_TIMEOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
};

function describeErrno(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code && ERRNO[code]) return ERRNO[code];
  return code ? `${code}: ${error.message}` : error.message;
}

function describeFetchError(error: unknown, timeoutMs: number | null): string {
  if (error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError")) {
    return `no answer within ${Math.round((timeoutMs ?? 0) / 1000)} s`;
  }
  let cause: unknown = error;
  while (cause instanceof Error && cause.cause instanceof Error) cause = cause.cause;
  if (cause instanceof Error) return describeErrno(cause);
  return String(error);
}

function setPath(target: Record<string, unknown>, keys: string[], value: unknown): Record<string, unknown> {
  let node: Record<string, unknown> = target;
  for (const key of keys.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== "object" || next === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[keys[keys.length - 1] as string] = value;
  return target;
}

/**
 * A mutation's result union: the object when it is `typename`, else the error it carries, thrown (with
 * `hints` in place of the general ones, see errorForCode).
 */
export function unwrap<T>(
  result: { __typename: string } & Record<string, unknown>,
  typename: string,
  hints: Partial<Record<string, string>> = {},
): T {
  if (result.__typename === typename) return result as T;
  if (typeof result.code === "string") {
    const field = typeof result.field === "string" ? ` (field \`${result.field}\`)` : "";
    throw errorForCode(result.code, `${String(result.message ?? "")}${field}`, hints);
  }
  throw new CliError(`unexpected result ${result.__typename} (expected ${typename})`);
}
