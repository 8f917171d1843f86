/**
 * What a patch of the development deployment needs (API.md section 6, "Live reload"): compares the
 * folder the development deployment runs with the newly uploaded one.
 *
 * - "identical": the two file trees are the same (relative paths, file contents by sha256, symbolic
 *   links by target, directories; nothing is ignored).
 * - "full": the change needs a new build and new replicas: hangar.json's `server`, `env` or
 *   `resources` changed (as parsed JSON values), hangar.json started or stopped being a valid JSON object, a dependency
 *   manifest or lockfile changed anywhere in the tree, anything under a node_modules/ changed, or the
 *   model is served by its own `server.command` (in either version), which cannot swap code in place.
 * - "code": anything else; Hangar's JavaScript model server loads it in the same process.
 *
 * A pure decision on what store/folder-diff.ts found comparing the two folders.
 */
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

/**
 * hangar.json keys whose change needs a full deploy; the others (name, config, ...) are code.
 * `resources` are a running replica's limits, set when it starts.
 */
const FULL_DEPLOY_KEYS = ["server", "env", "resources"] as const;
const MAX_LISTED_CHANGES = 20;

export type Entry =
  | { type: "file"; size: number }
  | { type: "symlink"; target: string }
  | { type: "directory" }
  | { type: "other" };

export type Change = "added" | "removed" | "changed";

/** What a comparison of the running folder with the new one found (store/folder-diff.ts). */
export interface FolderDiff {
  oldTree: ReadonlyMap<string, Entry>;
  newTree: ReadonlyMap<string, Entry>;
  /** Every path added, removed or changed (contents compared by sha256). */
  changes: ReadonlyMap<string, Change>;
  /** hangar.json's text in each folder: null when absent, "not a file" when it is a directory or link. */
  oldManifest: ManifestSource;
  newManifest: ManifestSource;
}

export type ManifestSource = { text: string } | null | "not a file";

export const MANIFEST = "hangar.json";

/** hangar.json as the build sees it: absent (same as {}), a JSON object, or invalid. */
type Manifest =
  | { state: "absent" }
  | { state: "valid"; value: Record<string, unknown> }
  | { state: "invalid"; problem: "not valid JSON" | "not a JSON object" | "not a file" };

export function planPatch(diff: FolderDiff): PatchPlan {
  const { changes, oldTree, newTree } = diff;
  if (changes.size === 0) return { kind: "identical", reasons: [] };

  const sorted = [...changes.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  const fullReasons: string[] = [];
  const codeReasons: string[] = [];

  const oldManifest = parseManifest(diff.oldManifest);
  const newManifest = parseManifest(diff.newManifest);
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

function parseManifest(source: ManifestSource): Manifest {
  if (source === null) return { state: "absent" };
  // A directory or a link named hangar.json is not a manifest the build can read as one.
  if (source === "not a file") return { state: "invalid", problem: "not a file" };
  let value: unknown;
  try {
    value = JSON.parse(source.text);
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
