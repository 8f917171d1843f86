/**
 * Packing a model folder for `hangar push` and `hangar watch`: a gzip'd tar of the folder's contents,
 * minus what `.hangarignore` (gitignore syntax, at the folder's top) and the defaults leave out.
 *
 * Defaults (DEFAULT_IGNORES): version-control metadata (.git, .hg, .svn), Hangar's own data dir
 * (.hangar), Python byte-code caches and editor/OS litter. `node_modules` is NOT left out: Hangar runs
 * the folder as it is and installs nothing, so a JavaScript model's dependencies travel with it (add
 * `node_modules/` to .hangarignore when the model has none it needs). The defaults come first and
 * .hangarignore's rules after them, so a `!pattern` line brings a default back.
 *
 * The archive is what the server accepts (API.md section 2): relative paths only, and symbolic links
 * only when they point inside the folder (others are refused here, naming the link, rather than by the
 * server). Sockets, FIFOs and devices are skipped. Entries are sorted and stamped with a fixed time, so
 * the same folder packs to the same bytes (the server stores an artifact once per content hash).
 */
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import type { Ignore } from "ignore";
import { CliError } from "./errors.ts";

export const IGNORE_FILE = ".hangarignore";

export const DEFAULT_IGNORES: readonly string[] = [
  ".git/",
  ".hg/",
  ".svn/",
  ".hangar/",
  "__pycache__/",
  "*.pyc",
  ".DS_Store",
  "Thumbs.db",
  "*.swp",
  "*~",
];

/** Fixed entry time: packing is deterministic (file contents decide, not when they were saved). */
const EPOCH = new Date("2000-01-01T00:00:00Z");

export interface PackedFolder {
  archive: Uint8Array;
  /** Files and links packed (directories not counted). */
  files: number;
  /** Bytes of file content before compression. */
  bytes: number;
  /** Relative paths packed, in archive order (directories end in "/"). */
  entries: string[];
  /** Things left out that were neither ignored nor packable (sockets, FIFOs, devices). */
  skipped: string[];
}

/** The ignore rules of a folder: the defaults, then its .hangarignore if it has one. */
export async function ignoreRules(dir: string): Promise<Ignore> {
  const { default: ignore } = await import("ignore");
  const rules = ignore().add([...DEFAULT_IGNORES]);
  const own = await readFile(path.join(dir, IGNORE_FILE), "utf8").catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return null;
    throw new CliError(`cannot read ${IGNORE_FILE}: ${error.message}`);
  });
  if (own !== null) rules.add(own);
  return rules;
}

/** True when `relative` (a path inside the folder, "/"-separated) is left out by the rules. */
export function isIgnored(rules: Ignore, relative: string, isDirectory: boolean): boolean {
  if (relative === "" || relative === ".") return false;
  return rules.ignores(isDirectory ? `${relative}/` : relative);
}

/** Where a link's target lands, relative to the folder; null when it leaves the folder. */
export function linkTargetInside(linkRelative: string, target: string): string | null {
  if (path.posix.isAbsolute(target) || path.win32.isAbsolute(target)) return null;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(linkRelative), target));
  if (resolved === ".." || resolved.startsWith("../")) return null;
  return resolved;
}

interface Walked {
  entries: string[];
  files: number;
  bytes: number;
  skipped: string[];
}

async function walk(root: string, rules: Ignore): Promise<Walked> {
  const out: Walked = { entries: [], files: 0, bytes: 0, skipped: [] };
  const visit = async (relative: string): Promise<void> => {
    const names = (await readdir(path.join(root, relative))).sort();
    for (const name of names) {
      const child = relative === "" ? name : `${relative}/${name}`;
      const stat = await lstat(path.join(root, child));
      if (isIgnored(rules, child, stat.isDirectory())) continue;
      if (stat.isDirectory()) {
        out.entries.push(`${child}/`);
        await visit(child);
      } else if (stat.isFile()) {
        out.entries.push(child);
        out.files++;
        out.bytes += stat.size;
      } else if (stat.isSymbolicLink()) {
        const target = await readlink(path.join(root, child));
        if (linkTargetInside(child, target) === null) {
          throw new CliError(
            `${child} is a link to ${target}, outside the folder: Hangar refuses such links. ` +
              `Copy what it points to into the folder, or list it in ${IGNORE_FILE}.`,
          );
        }
        out.entries.push(child);
        out.files++;
      } else {
        out.skipped.push(child);
      }
    }
  };
  await visit("");
  return out;
}

/** Packs `dir` (which must exist and be a directory) into a gzip'd tar of its contents. */
export async function packFolder(dir: string): Promise<PackedFolder> {
  const root = path.resolve(dir);
  const rules = await ignoreRules(root);
  const walked = await walk(root, rules);
  // tar wants directory entries without the trailing slash. An empty folder still packs to a valid
  // (empty) archive: the build then says what is missing.
  const names = walked.entries.length > 0 ? walked.entries.map((entry) => entry.replace(/\/$/, "")) : ["."];
  const chunks: Uint8Array[] = [];
  // tar and ignore load on use: commands that pack nothing start faster.
  const tar = await import("tar");
  const stream = tar.create(
    { gzip: true, cwd: root, portable: true, noDirRecurse: true, mtime: EPOCH },
    names,
  );
  for await (const chunk of stream) chunks.push(chunk as Uint8Array);
  const archive = new Uint8Array(Buffer.concat(chunks));
  return {
    archive,
    files: walked.files,
    bytes: walked.bytes,
    entries: walked.entries,
    skipped: walked.skipped,
  };
}

/** Human-readable size: 812 B, 4.2 kB, 13.0 MB (decimal units, like `ls -h --si`). */
export function formatBytes(bytes: number): string {
  if (bytes < 1000) return `${bytes} B`;
  const units = ["kB", "MB", "GB", "TB"];
  let value = bytes / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}
