import path from "node:path";

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
  /** How long the gateway holds a request for a deployment that is still starting. */
  readyTimeoutMs: number;
  /** How long a model may take to answer one request before the gateway answers 504. */
  predictTimeoutMs: number;
  logLevel: string;
  /** How often the autoscaler evaluates every deployment. */
  autoscalerIntervalMs: number;
  /** Identical subscriptions share one execution (graphql/shared-subscriptions.ts); off only to measure. */
  sharedSubscriptions: boolean;
}

type Env = Record<string, string | undefined>;

function integer(env: Env, name: string, fallback: number, min = 0): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${name} must be an integer >= ${min}, got '${raw}'`);
  }
  return value;
}

export function loadConfig(env: Env = process.env, overrides: Partial<Config> = {}): Config {
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
    adminKey: overrides.adminKey ?? (env.HANGAR_ADMIN_KEY || null),
    publicUrl: (overrides.publicUrl ?? env.HANGAR_PUBLIC_URL ?? `http://${urlHost}:${port}`).replace(
      /\/+$/,
      "",
    ),
    maxUploadBytes: overrides.maxUploadBytes ?? integer(env, "HANGAR_MAX_UPLOAD_BYTES", 100 * 1024 * 1024, 1),
    maxRequestBytes:
      overrides.maxRequestBytes ?? integer(env, "HANGAR_MAX_REQUEST_BYTES", 10 * 1024 * 1024, 1),
    readyTimeoutMs: overrides.readyTimeoutMs ?? integer(env, "HANGAR_READY_TIMEOUT", 300, 1) * 1000,
    predictTimeoutMs: overrides.predictTimeoutMs ?? integer(env, "HANGAR_PREDICT_TIMEOUT", 300, 1) * 1000,
    logLevel: overrides.logLevel ?? env.HANGAR_LOG_LEVEL ?? "info",
    autoscalerIntervalMs:
      overrides.autoscalerIntervalMs ?? integer(env, "HANGAR_AUTOSCALER_INTERVAL_MS", 500, 50),
    sharedSubscriptions: overrides.sharedSubscriptions ?? env.HANGAR_SHARED_SUBSCRIPTIONS !== "0",
  };
}
