/**
 * Code staged for a fenced replica: a copy of a model folder made of hard
 * links (instant, no extra disk) where the folder and the stage share a file
 * system, of copies where they do not. The stage is mounted read-only in the
 * replica, so sharing the files' inodes with the artifact store is safe.
 */
import { copyFile, link, lstat, mkdir, readdir, readlink, symlink } from "node:fs/promises";
import path from "node:path";

export async function stageTree(source: string, target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const entry of await readdir(source, { withFileTypes: true })) {
    const from = path.join(source, entry.name);
    const to = path.join(target, entry.name);
    if (entry.isDirectory()) {
      await stageTree(from, to);
    } else if (entry.isSymbolicLink()) {
      // Archives are checked at upload: a link never points outside its folder.
      await symlink(await readlink(from), to);
    } else if (entry.isFile()) {
      await link(from, to).catch(async (error: NodeJS.ErrnoException) => {
        if (error.code !== "EXDEV" && error.code !== "EPERM") throw error;
        await copyFile(from, to);
      });
    }
    // Anything else (a socket, a device) is not code, and uploads cannot hold one.
  }
}

export async function isDirectory(dir: string): Promise<boolean> {
  return lstat(dir).then(
    (s) => s.isDirectory(),
    () => false,
  );
}
