import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { type Resources, resolveResources } from "../domain/resources.ts";

/** What a replica process needs, derived from the model folder. */
export interface ReplicaSpec {
  deploymentId: string;
  /** Identity of the code: replicas of another artifact are replaced. */
  artifactHash: string;
  dir: string;
  /** `server.command` of hangar.json, or null for Hangar's JavaScript model server. */
  command: string | null;
  env: Record<string, string>;
  predictPath: string;
  readinessPath: string;
  environmentName: string | null;
  config: unknown;
  /** What each replica may use (cores, memory, processes): hangar.json's `resources` over the defaults. */
  resources: Resources;
}

export type BuildResult = { spec: ReplicaSpec; log: string[] } | { error: string; log: string[] };

interface HangarJson {
  name?: unknown;
  env?: unknown;
  config?: unknown;
  server?: { command?: unknown; predictPath?: unknown; readinessPath?: unknown } | unknown;
  resources?: unknown;
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    (s) => s.isFile(),
    () => false,
  );
}

function pathSetting(value: unknown, fallback: string, name: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !value.startsWith("/"))
    throw new Error(`${name} must be a path starting with '/'`);
  return value;
}

/**
 * The build: checks the folder and works out how to run it. Models bring their
 * dependencies in the folder (no network installs happen here), so building
 * is validation plus reading hangar.json.
 */
export async function buildSpec(opts: {
  deploymentId: string;
  artifactHash: string;
  dir: string;
  environmentName: string | null;
  /** The server's replica resources, for what hangar.json's `resources` leaves out (and the process cap). */
  resourceDefaults: Resources;
}): Promise<BuildResult> {
  const log: string[] = [];
  const { dir } = opts;
  let manifest: HangarJson = {};
  const manifestPath = path.join(dir, "hangar.json");
  if (await exists(manifestPath)) {
    try {
      const parsed: unknown = JSON.parse(await readFile(manifestPath, "utf8"));
      if (!parsed || typeof parsed !== "object" || Array.isArray(parsed))
        throw new Error("not a JSON object");
      manifest = parsed as HangarJson;
      log.push("read hangar.json");
    } catch (error) {
      return { error: `hangar.json is not valid: ${(error as Error).message}`, log };
    }
  }
  const env: Record<string, string> = {};
  if (manifest.env !== undefined) {
    if (!manifest.env || typeof manifest.env !== "object" || Array.isArray(manifest.env)) {
      return { error: "hangar.json: env must be an object of strings", log };
    }
    for (const [key, value] of Object.entries(manifest.env)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
        return { error: `hangar.json: env name '${key}' is invalid`, log };
      if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") {
        return { error: `hangar.json: env.${key} must be a string`, log };
      }
      env[key] = String(value);
    }
  }
  const resolved = resolveResources(manifest.resources, opts.resourceDefaults);
  if ("problem" in resolved) return { error: `hangar.json: ${resolved.problem}`, log };
  const { resources } = resolved;
  const base = {
    deploymentId: opts.deploymentId,
    artifactHash: opts.artifactHash,
    dir,
    env,
    environmentName: opts.environmentName,
    config: manifest.config ?? {},
    resources,
  };
  if (manifest.server !== undefined) {
    const server = manifest.server as { command?: unknown; predictPath?: unknown; readinessPath?: unknown };
    if (
      !server ||
      typeof server !== "object" ||
      typeof server.command !== "string" ||
      !server.command.trim()
    ) {
      return { error: "hangar.json: server.command must be a non-empty string", log };
    }
    try {
      const spec: ReplicaSpec = {
        ...base,
        command: server.command,
        predictPath: pathSetting(server.predictPath, "/predict", "server.predictPath"),
        readinessPath: pathSetting(server.readinessPath, "/health", "server.readinessPath"),
      };
      log.push(`server command: ${server.command}`);
      return { spec, log };
    } catch (error) {
      return { error: `hangar.json: ${(error as Error).message}`, log };
    }
  }
  for (const entry of ["model.mjs", "model.js"]) {
    if (await exists(path.join(dir, entry))) {
      log.push(`found ${entry}; serving it with Hangar's JavaScript model server`);
      return { spec: { ...base, command: null, predictPath: "/predict", readinessPath: "/health" }, log };
    }
  }
  return {
    error: "the model folder has neither model.mjs / model.js nor a server command in hangar.json",
    log,
  };
}
