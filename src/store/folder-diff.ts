/**
 * Compares the folder a development deployment runs with a newly uploaded
 * one, for domain/patch.ts to judge: the two trees, what changed in them
 * (file contents by sha256, links by target), and the two hangar.json texts.
 */
import { createHash } from "node:crypto";
import { createReadStream, readFile as readFileWithCallback } from "node:fs";
import { lstat, readdir, readFile, readlink } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { type Change, type Entry, type FolderDiff, MANIFEST, type ManifestSource } from "../domain/patch.ts";

/** Files read or hashed at once: enough to overlap I/O, few enough to stay far from fd limits. */
const CONCURRENCY = 16;

export async function compareFolders(oldDir: string, newDir: string): Promise<FolderDiff> {
  const oldRoot = path.resolve(oldDir);
  const newRoot = path.resolve(newDir);
  const limit = limiter(CONCURRENCY);
  const [oldTree, newTree] = await Promise.all([listTree(oldRoot, limit), listTree(newRoot, limit)]);
  const changes = new Map<string, Change>();
  const same = { oldTree, newTree, changes, oldManifest: null, newManifest: null };
  if (oldRoot === newRoot) return same;
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
  if (changes.size === 0) return same;
  const [oldManifest, newManifest] = await Promise.all([
    readManifest(oldRoot, oldTree.get(MANIFEST)),
    readManifest(newRoot, newTree.get(MANIFEST)),
  ]);
  return { oldTree, newTree, changes, oldManifest, newManifest };
}

async function readManifest(root: string, entry: Entry | undefined): Promise<ManifestSource> {
  if (entry === undefined) return null;
  if (entry.type !== "file") return "not a file";
  return { text: await readFile(path.join(root, MANIFEST), "utf8") };
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
