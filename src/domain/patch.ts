/**
 * What a patch of the development deployment needs (API.md section 6, "Live reload"): compares the
 * folder the development deployment runs with the newly uploaded one.
 *
 * - "identical": the two file trees are the same (relative paths, file contents by sha256, symbolic
 *   links by target, directories; nothing is ignored).
 * - "full": the change needs a new build and new replicas: hangar.json's `server` or `env` changed
 *   (as parsed JSON values), hangar.json started or stopped being a valid JSON object, a dependency
 *   manifest or lockfile changed anywhere in the tree, anything under a node_modules/ changed, or the
 *   model is served by its own `server.command` (in either version), which cannot swap code in place.
 * - "code": anything else; Hangar's JavaScript model server loads it in the same process.
 *
 * A pure decision: it reads the two folders and nothing else.
 */
import { createHash } from "node:crypto";
import { createReadStream, readFile as readFileWithCallback } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

export type PatchKind = "identical" | "code" | "full";

export interface PatchPlan {
  kind: PatchKind;
  /**
   * Why, for people: for "full" the changes that need a full deploy, for "code" the files that changed
   * (at most MAX_LISTED_CHANGES of them, then a count), for "identical" nothing.
   */
  reasons: string[];
}

/** File names whose change means different dependencies, wherever they are in the folder. */
export const DEPENDENCY_FILES: ReadonlySet<string> = new Set([
  "package.json",
  "package-lock.json",
  "npm-shrinkwrap.json",
  "yarn.lock",
  "pnpm-lock.yaml",
  "requirements.txt",
  "pyproject.toml",
  "Pipfile",
  "Pipfile.lock",
  "poetry.lock",
]);

export const OWN_COMMAND_REASON = "models served by their own command restart to pick up changes";

const MANIFEST = "hangar.json";
/** hangar.json keys whose change needs a full deploy; the others (name, config, ...) are code. */
const FULL_DEPLOY_KEYS = ["server", "env"] as const;
/** Files read or hashed at once: enough to overlap I/O, few enough to stay far from fd limits. */
const CONCURRENCY = 16;
const MAX_LISTED_CHANGES = 20;

type Entry =
  | { type: "file"; size: number }
  | { type: "symlink"; target: string }
  | { type: "directory" }
  | { type: "other" };

type Change = "added" | "removed" | "changed";

/** hangar.json as the build sees it: absent (same as {}), a JSON object, or invalid. */
type Manifest =
  | { state: "absent" }
  | { state: "valid"; value: Record<string, unknown> }
  | { state: "invalid"; problem: "not valid JSON" | "not a JSON object" | "not a file" };

export async function planPatch(oldDir: string, newDir: string): Promise<PatchPlan> {
  const oldRoot = path.resolve(oldDir);
  const newRoot = path.resolve(newDir);
  const limit = limiter(CONCURRENCY);
  const [oldTree, newTree] = await Promise.all([listTree(oldRoot, limit), listTree(newRoot, limit)]);
  if (oldRoot === newRoot) return { kind: "identical", reasons: [] };

  const changes = new Map<string, Change>();
  const sameSizeFiles: [rel: string, size: number][] = [];
  for (const [rel, before] of oldTree) {
    const after = newTree.get(rel);
    if (after === undefined) changes.set(rel, "removed");
    else if (before.type !== after.type) changes.set(rel, "changed");
    else if (before.type === "symlink" && after.type === "symlink") {
      if (before.target !== after.target) changes.set(rel, "changed");
    } else if (before.type === "file" && after.type === "file") {
      if (before.size !== after.size) changes.set(rel, "changed");
      else sameSizeFiles.push([rel, before.size]);
    } else if (before.type === "other") {
      // Sockets, FIFOs, devices: nothing to compare them by, so never the same.
      changes.set(rel, "changed");
    }
  }
  for (const rel of newTree.keys()) if (!oldTree.has(rel)) changes.set(rel, "added");
  await Promise.all(
    sameSizeFiles.map(async ([rel, size]) => {
      const [a, b] = await Promise.all([
        limit(() => hashFile(path.join(oldRoot, rel), size)),
        limit(() => hashFile(path.join(newRoot, rel), size)),
      ]);
      if (a !== b) changes.set(rel, "changed");
    }),
  );
  if (changes.size === 0) return { kind: "identical", reasons: [] };

  const sorted = [...changes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const fullReasons: string[] = [];
  const codeReasons: string[] = [];

  const [oldManifest, newManifest] = await Promise.all([
    readManifest(oldRoot, oldTree.get(MANIFEST)),
    readManifest(newRoot, newTree.get(MANIFEST)),
  ]);
  if (usesOwnCommand(oldManifest) || usesOwnCommand(newManifest)) fullReasons.push(OWN_COMMAND_REASON);
  if (changes.has(MANIFEST)) {
    const verdict = compareManifests(oldManifest, newManifest);
    fullReasons.push(...verdict.full);
    codeReasons.push(...verdict.code);
  }

  const changedAncestors = ancestorsOf(changes.keys());
  const nodeModulesChanged = new Map<string, number>();
  for (const [rel, change] of sorted) {
    if (rel === MANIFEST) continue;
    const segments = rel.split("/");
    const nodeModules = segments.indexOf("node_modules");
    if (nodeModules !== -1) {
      const root = `${segments.slice(0, nodeModules + 1).join("/")}/`;
      nodeModulesChanged.set(root, (nodeModulesChanged.get(root) ?? 0) + 1);
    } else if (DEPENDENCY_FILES.has(segments[segments.length - 1] ?? "")) {
      fullReasons.push(`${rel} ${change} (dependencies)`);
    } else {
      // A directory added or removed with files in it: the files say it.
      const isDirectory = (oldTree.get(rel) ?? newTree.get(rel))?.type === "directory";
      if (isDirectory && change !== "changed" && changedAncestors.has(rel)) continue;
      codeReasons.push(`${rel} ${change}`);
    }
  }
  for (const [root, count] of nodeModulesChanged) {
    fullReasons.push(`${root} changed (${count} ${count === 1 ? "entry" : "entries"})`);
  }

  if (fullReasons.length > 0) return { kind: "full", reasons: fullReasons };
  return { kind: "code", reasons: capped(codeReasons) };
}

/** Every directory that has a changed path somewhere below it. */
function ancestorsOf(paths: Iterable<string>): Set<string> {
  const ancestors = new Set<string>();
  for (const rel of paths) {
    for (let slash = rel.indexOf("/"); slash !== -1; slash = rel.indexOf("/", slash + 1)) {
      ancestors.add(rel.slice(0, slash));
    }
  }
  return ancestors;
}

function capped(reasons: string[]): string[] {
  if (reasons.length <= MAX_LISTED_CHANGES) return reasons;
  return [...reasons.slice(0, MAX_LISTED_CHANGES), `and ${reasons.length - MAX_LISTED_CHANGES} more changes`];
}

function compareManifests(before: Manifest, after: Manifest): { full: string[]; code: string[] } {
  if (after.state === "invalid") {
    const why =
      before.state === "invalid"
        ? `${MANIFEST} is still ${after.problem}`
        : `${MANIFEST} is now ${after.problem}`;
    return { full: [why], code: [] };
  }
  if (before.state === "invalid") {
    const now = after.state === "absent" ? "removed" : "a valid JSON object";
    return { full: [`${MANIFEST} was ${before.problem}, now ${now}`], code: [] };
  }
  const oldValue = before.state === "valid" ? before.value : {};
  const newValue = after.state === "valid" ? after.value : {};
  const full: string[] = [];
  const code: string[] = [];
  const keys = [...new Set([...Object.keys(oldValue), ...Object.keys(newValue)])].sort();
  for (const key of keys) {
    if (jsonEqual(oldValue[key], newValue[key])) continue;
    const reason = `${MANIFEST}: ${key} ${key in oldValue ? (key in newValue ? "changed" : "removed") : "added"}`;
    if ((FULL_DEPLOY_KEYS as readonly string[]).includes(key)) full.push(reason);
    else code.push(reason);
  }
  // Same values, different bytes (formatting, key order): still a change of the file.
  if (full.length === 0 && code.length === 0) {
    const what = before.state === "absent" ? "added" : after.state === "absent" ? "removed" : "changed";
    code.push(`${MANIFEST} ${what} (same settings)`);
  }
  return { full, code };
}

function usesOwnCommand(manifest: Manifest): boolean {
  if (manifest.state !== "valid") return false;
  const server = manifest.value.server;
  return isObject(server) && server.command !== undefined;
}

async function readManifest(root: string, entry: Entry | undefined): Promise<Manifest> {
  if (entry === undefined) return { state: "absent" };
  // A directory or a link named hangar.json is not a manifest the build can read as one.
  if (entry.type !== "file") return { state: "invalid", problem: "not a file" };
  const text = await readFile(path.join(root, MANIFEST), "utf8");
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { state: "invalid", problem: "not valid JSON" };
  }
  return isObject(value) ? { state: "valid", value } : { state: "invalid", problem: "not a JSON object" };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Equality of parsed JSON values: object key order does not matter, array order does. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const keys = Object.keys(a);
    if (keys.length !== Object.keys(b).length) return false;
    return keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
  }
  return false;
}

/** Every entry under `root` by its relative path with `/` separators; links are not followed. */
async function listTree(root: string, limit: Limiter): Promise<Map<string, Entry>> {
  const rootStat = await lstat(root);
  if (!rootStat.isDirectory()) throw new Error(`not a directory: ${root}`);
  const tree = new Map<string, Entry>();
  const walk = async (rel: string): Promise<void> => {
    const dirents = await limit(() => readdir(path.join(root, rel), { withFileTypes: true }));
    await Promise.all(
      dirents.map(async (dirent) => {
        const childRel = rel === "" ? dirent.name : `${rel}/${dirent.name}`;
        const full = path.join(root, childRel);
        if (dirent.isDirectory()) {
          tree.set(childRel, { type: "directory" });
          await walk(childRel);
        } else if (dirent.isSymbolicLink()) {
          tree.set(childRel, { type: "symlink", target: await limit(() => readlink(full)) });
        } else if (dirent.isFile()) {
          tree.set(childRel, { type: "file", size: (await limit(() => lstat(full))).size });
        } else {
          tree.set(childRel, { type: "other" });
        }
      }),
    );
  };
  await walk("");
  return tree;
}

/** Files up to this size are read in one call; bigger ones (weights) are streamed through the hash. */
const READ_WHOLE_MAX_BYTES = 1024 * 1024;
/**
 * The callback readFile reads a small file in one go; fs/promises' readFile reads in chunks and is
 * about three times slower per file on Node 20, which shows with thousands of small files.
 */
const readWholeFile = promisify(readFileWithCallback);

async function hashFile(file: string, size: number): Promise<string> {
  if (size <= READ_WHOLE_MAX_BYTES)
    return createHash("sha256")
      .update(await readWholeFile(file))
      .digest("hex");
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(file)
      .on("error", reject)
      .on("data", (chunk) => hash.update(chunk))
      .on("end", () => resolve(hash.digest("hex")));
  });
}

type Limiter = <T>(task: () => Promise<T>) => Promise<T>;

/** Runs at most `max` tasks at once, the others in the order they were queued. */
function limiter(max: number): Limiter {
  let running = 0;
  const waiting: (() => void)[] = [];
  // A finishing task hands its slot straight to the next one waiting, so `running` never exceeds max.
  const next = () => {
    const wake = waiting.shift();
    if (wake) wake();
    else running--;
  };
  return async <T>(task: () => Promise<T>): Promise<T> => {
    if (running >= max) await new Promise<void>((resolve) => waiting.push(resolve));
    else running++;
    try {
      return await task();
    } finally {
      next();
    }
  };
}
