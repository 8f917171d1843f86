import { randomBytes } from "node:crypto";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import { CliError, UsageError } from "./errors.ts";

/** The Hangar server a command talks to. */
export interface Target {
  url: string;
  apiKey: string;
}

/** The options every client command takes (see withGlobals). */
export interface GlobalOptions {
  url?: string;
  apiKey?: string;
  json?: boolean;
}

/** Where `hangar login` keeps the address and key. */
export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HANGAR_CONFIG) return path.resolve(env.HANGAR_CONFIG);
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), ".config");
  return path.join(base, "hangar", "config.json");
}

/** A server address as typed by the user, checked and without trailing slashes. */
export function normalizeUrl(raw: string, from: string): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new UsageError(`${from} is not a URL: '${raw}' (expected something like http://127.0.0.1:4000)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`${from} must be an http:// or https:// URL, got '${raw}'`);
  }
  return url.toString().replace(/\/+$/, "");
}

async function readConfig(file: string): Promise<Partial<Target>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return {};
    throw new CliError(`cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as Record<string, unknown>;
    return {
      url: typeof parsed.url === "string" ? parsed.url : undefined,
      apiKey: typeof parsed.apiKey === "string" ? parsed.apiKey : undefined,
    };
  } catch {
    throw new CliError(`${file} is not valid JSON: run \`hangar login --url URL --api-key KEY\` again`);
  }
}

/** Flags, else HANGAR_URL / HANGAR_API_KEY, else the config file; each of the two on its own. */
export async function resolveTarget(
  opts: GlobalOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<Target> {
  const file = configPath(env);
  const needFile = !(opts.url || env.HANGAR_URL) || !(opts.apiKey || env.HANGAR_API_KEY);
  const saved = needFile ? await readConfig(file) : {};
  const url = opts.url
    ? { value: opts.url, from: "--url" }
    : env.HANGAR_URL
      ? { value: env.HANGAR_URL, from: "HANGAR_URL" }
      : saved.url
        ? { value: saved.url, from: `the url in ${file}` }
        : null;
  const apiKey = opts.apiKey || env.HANGAR_API_KEY || saved.apiKey;
  if (!url || !apiKey) {
    const missing = [!url && "server URL", !apiKey && "API key"].filter(Boolean).join(" and ");
    throw new UsageError(
      `no ${missing} configured: run \`hangar login --url URL --api-key KEY\`, ` +
        "set HANGAR_URL and HANGAR_API_KEY, or pass --url and --api-key",
    );
  }
  return { url: normalizeUrl(url.value, url.from), apiKey };
}

/** Writes the config file (directory 0700, file 0600, atomically) and returns its path. */
export async function saveLogin(target: Target, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  const file = configPath(env);
  const dir = path.dirname(file);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const temporary = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    await writeFile(temporary, `${JSON.stringify({ url: target.url, apiKey: target.apiKey }, null, 2)}\n`, {
      mode: 0o600,
      flag: "wx",
    });
    await chmod(temporary, 0o600);
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw new CliError(`cannot write ${file}: ${(error as Error).message}`);
  }
  return file;
}
