import path from "node:path";
import { API_KEY_PATTERN } from "./domain/access.ts";
import { DEFAULT_RESOURCES, type ResourceName, type Resources, resourceProblem } from "./domain/resources.ts";
import { DEFAULT_ANSWER_TIMEOUT_MS } from "./domain/webhooks.ts";

/** Server settings (API.md section 1 and the additions documented in the README). */
export interface Config {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string | null;
  adminKey: string | null;
  /** Absolute base of the URLs the API hands out (predictUrl). */
  publicUrl: string;
  maxUploadBytes: number;
  maxRequestBytes: number;
  /** Largest GraphQL body that is not an upload (JSON), refused with 413 as it streams in. */
  maxBodyBytes: number;
  /** Largest answer the gateway relays from a replica. */
  maxResponseBytes: number;
  /** Log lines, and artifacts no deployment has referenced, are removed after this many days. */
  retentionDays: number;
  /** How long the gateway holds a request for a deployment that is still starting. */
  readyTimeoutMs: number;
  /** How long a model may take to answer one request before the gateway answers 504. */
  predictTimeoutMs: number;
  logLevel: string;
  /** How often the autoscaler evaluates every deployment. */
  autoscalerIntervalMs: number;
  /** Identical subscriptions share one execution (http/shared-subscriptions.ts); off only to measure. */
  sharedSubscriptions: boolean;
  /** HANGAR_METRICS: the gateway counts answers for GET /metrics (metrics/prometheus.ts); off: /metrics is 404. */
  metrics: boolean;
  /** GraphQL limits, checked before execution (graphql/limits.ts, API.md section 8). */
  graphqlMaxDepth: number;
  graphqlMaxTokens: number;
  graphqlMaxAliases: number;
  graphqlMaxCost: number;
  /**
   * Origins (scheme://host[:port]) whose pages may call the API with a bearer key
   * (HANGAR_CORS_ORIGINS, API.md section 7); never with the browser session.
   */
  corsOrigins: string[];
  /**
   * What a replica runs with when its hangar.json's `resources` does not say (HANGAR_REPLICA_CPU,
   * HANGAR_REPLICA_MEMORY_MB), and the process cap, which only this sets (HANGAR_REPLICA_PIDS).
   */
  replicaResources: Resources;
  /** HANGAR_SANDBOX (API.md section 9): fence replicas when the machine allows it, always, or never. */
  sandbox: SandboxMode;
  /** As root, replicas run as uids from here on (HANGAR_SANDBOX_UID_BASE). */
  sandboxUidBase: number;
  /** HANGAR_MEMBER_NAME (API.md section 10); null: `<hostname>:<port>`, decided once the port is bound. */
  memberName: string | null;
  /** HANGAR_MEMBER_URL: how the other members reach this one; null: the public URL. */
  memberUrl: string | null;
  /** HANGAR_WEBHOOK_TIMEOUT_MS: how long a webhook receiver has to answer before the attempt failed. */
  webhookTimeoutMs: number;
  /** HANGAR_WEBHOOK_ALLOW_LOCAL: webhooks may POST to this machine and link-local addresses. */
  webhookAllowLocal: boolean;
}

type Env = Record<string, string | undefined>;

export type SandboxMode = "auto" | "required" | "off";
const SANDBOX_MODES: readonly SandboxMode[] = ["auto", "required", "off"];

function sandboxMode(raw: string | undefined): SandboxMode {
  if (raw === undefined || raw === "") return "auto";
  if ((SANDBOX_MODES as readonly string[]).includes(raw)) return raw as SandboxMode;
  throw new Error(`HANGAR_SANDBOX must be one of ${SANDBOX_MODES.join(", ")}, got '${raw}'`);
}

/** A member name: what the `members` query and every replica's `member` show. */
function memberName(raw: string | undefined): string | null {
  if (raw === undefined || raw === "") return null;
  if (!/^[A-Za-z0-9._:@-]{1,128}$/.test(raw)) {
    throw new Error(
      `HANGAR_MEMBER_NAME must be 1-128 letters, digits, '.', '_', ':', '@' or '-', got '${raw.slice(0, 140)}'`,
    );
  }
  return raw;
}

function memberUrl(raw: string | undefined): string | null {
  if (raw === undefined || raw === "") return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new Error(`HANGAR_MEMBER_URL must be an http:// or https:// URL, got '${raw.slice(0, 200)}'`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new Error(`HANGAR_MEMBER_URL must be an http:// or https:// URL, got '${raw.slice(0, 200)}'`);
  }
  return raw.replace(/\/+$/, "");
}

function integer(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min}, got '${raw}'`);
  }
  return value;
}

/**
 * An on/off setting: unset or empty is `fallback`; 1, on, true and 0, off, false (any case). Anything
 * else stops the server: a typo must not silently turn a feature on or off.
 */
function onOff(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = raw.toLowerCase();
  if (value === "1" || value === "on" || value === "true") return true;
  if (value === "0" || value === "off" || value === "false") return false;
  throw new Error(`${name} must be 1, on or true, or 0, off or false, got '${raw.slice(0, 40)}'`);
}

/** A number > 0 (fractions allowed, e.g. a retention of 0.001 days in tests). */
function positiveNumber(env: Env, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a number > 0, got '${raw}'`);
  return value;
}

/** A replica resource's default, within the bounds hangar.json's `resources` has (domain/resources.ts). */
function resource(env: Env, name: string, resource: ResourceName): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return DEFAULT_RESOURCES[resource];
  const value = Number(raw);
  const problem = resourceProblem(resource, value, `'${raw}'`);
  if (problem) throw new Error(`${name} ${problem}`);
  return value;
}

/**
 * HANGAR_CORS_ORIGINS: comma-separated origins, each exactly `scheme://host[:port]`
 * (a trailing / is tolerated). Anything else (a path, `*`, `null`) stops the
 * server: a typo must not silently open or close the API to a page.
 */
export function parseCorsOrigins(raw: string | undefined): string[] {
  const origins: string[] = [];
  for (const entry of (raw ?? "").split(",")) {
    const text = entry.trim();
    if (text === "") continue;
    let url: URL | null = null;
    try {
      url = new URL(text);
    } catch {}
    const plain =
      url !== null &&
      (url.protocol === "http:" || url.protocol === "https:") &&
      url.username === "" &&
      url.password === "" &&
      url.pathname === "/" &&
      url.search === "" &&
      url.hash === "";
    if (!url || !plain) {
      throw new Error(
        `HANGAR_CORS_ORIGINS holds '${text}', which is not an origin: list http:// or https:// origins such as https://app.example.com or http://localhost:5173, comma-separated`,
      );
    }
    if (!origins.includes(url.origin)) origins.push(url.origin);
  }
  return origins;
}

export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
  const adminKey = overrides.adminKey ?? (env.HANGAR_ADMIN_KEY || null);
  if (adminKey !== null && !API_KEY_PATTERN.test(adminKey)) {
    throw new Error(
      "HANGAR_ADMIN_KEY must match ^hk_[A-Za-z0-9_-]{32,}$ ('hk_' and at least 32 letters, digits, '_' or '-'); unset it to have one generated",
    );
  }
  const port = overrides.port ?? integer(env, "PORT", 4000);
  const host = overrides.host ?? env.HOST ?? "127.0.0.1";
  const databaseUrl = overrides.databaseUrl !== undefined ? overrides.databaseUrl : env.DATABASE_URL || null;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new Error(
      "DATABASE_URL must be a postgres:// or postgresql:// URL (unset it for the embedded database)",
    );
  }
  const urlHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return {
    port,
    host,
    dataDir: path.resolve(overrides.dataDir ?? env.HANGAR_DATA_DIR ?? ".hangar"),
    databaseUrl,
    adminKey,
    publicUrl: (overrides.publicUrl ?? env.HANGAR_PUBLIC_URL ?? `http://${urlHost}:${port}`).replace(
      /\/+$/,
      "",
    ),
    maxUploadBytes: overrides.maxUploadBytes ?? integer(env, "HANGAR_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1),
    maxRequestBytes:
      overrides.maxRequestBytes ?? integer(env, "HANGAR_MAX_REQUEST_BYTES", 10 * 1024 * 1024, 1),
    maxBodyBytes: overrides.maxBodyBytes ?? integer(env, "HANGAR_MAX_BODY_BYTES", 1024 * 1024, 1),
    maxResponseBytes:
      overrides.maxResponseBytes ?? integer(env, "HANGAR_MAX_RESPONSE_BYTES", 100 * 1024 * 1024, 1),
    retentionDays: overrides.retentionDays ?? positiveNumber(env, "HANGAR_RETENTION_DAYS", 30),
    readyTimeoutMs: overrides.readyTimeoutMs ?? integer(env, "HANGAR_READY_TIMEOUT", 300, 1) * 1000,
    predictTimeoutMs: overrides.predictTimeoutMs ?? integer(env, "HANGAR_PREDICT_TIMEOUT", 300, 1) * 1000,
    logLevel: overrides.logLevel ?? env.HANGAR_LOG_LEVEL ?? "info",
    autoscalerIntervalMs:
      overrides.autoscalerIntervalMs ?? integer(env, "HANGAR_AUTOSCALER_INTERVAL_MS", 500, 50),
    sharedSubscriptions: overrides.sharedSubscriptions ?? onOff(env, "HANGAR_SHARED_SUBSCRIPTIONS", true),
    metrics: overrides.metrics ?? onOff(env, "HANGAR_METRICS", true),
    graphqlMaxDepth: overrides.graphqlMaxDepth ?? integer(env, "HANGAR_GRAPHQL_MAX_DEPTH", 12, 1),
    graphqlMaxTokens: overrides.graphqlMaxTokens ?? integer(env, "HANGAR_GRAPHQL_MAX_TOKENS", 5000, 1),
    graphqlMaxAliases: overrides.graphqlMaxAliases ?? integer(env, "HANGAR_GRAPHQL_MAX_ALIASES", 50, 0),
    graphqlMaxCost: overrides.graphqlMaxCost ?? integer(env, "HANGAR_GRAPHQL_MAX_COST", 50_000, 1),
    corsOrigins: overrides.corsOrigins ?? parseCorsOrigins(env.HANGAR_CORS_ORIGINS),
    replicaResources: overrides.replicaResources ?? {
      cpu: resource(env, "HANGAR_REPLICA_CPU", "cpu"),
      memoryMb: resource(env, "HANGAR_REPLICA_MEMORY_MB", "memoryMb"),
      pids: resource(env, "HANGAR_REPLICA_PIDS", "pids"),
    },
    sandbox: overrides.sandbox ?? sandboxMode(env.HANGAR_SANDBOX),
    // Below 1000 are the system's own users; the range must fit below 2^32 - 1 with room for 65536.
    sandboxUidBase: overrides.sandboxUidBase ?? integer(env, "HANGAR_SANDBOX_UID_BASE", 200_000, 1000),
    memberName:
      overrides.memberName !== undefined ? overrides.memberName : memberName(env.HANGAR_MEMBER_NAME),
    memberUrl: overrides.memberUrl !== undefined ? overrides.memberUrl : memberUrl(env.HANGAR_MEMBER_URL),
    webhookAllowLocal: overrides.webhookAllowLocal ?? onOff(env, "HANGAR_WEBHOOK_ALLOW_LOCAL", false),
    webhookTimeoutMs:
      overrides.webhookTimeoutMs ?? integer(env, "HANGAR_WEBHOOK_TIMEOUT_MS", DEFAULT_ANSWER_TIMEOUT_MS, 100),
  };
}
