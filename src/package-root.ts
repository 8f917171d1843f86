import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The folder that holds Hangar's package.json, found by walking up from this
 * module: the same answer whether the sources run through tsx (src/) or as the
 * bundle (dist/chunks/), which sit at different depths.
 */
function findPackageRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, "package.json")) && existsSync(path.join(dir, "prisma"))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no Hangar package root above ${from}`);
  }
}

export const PACKAGE_ROOT = findPackageRoot(path.dirname(fileURLToPath(import.meta.url)));

/** A path inside the package (its migrations, the model server script). */
export function packagePath(...parts: string[]): string {
  return path.join(PACKAGE_ROOT, ...parts);
}

let version: string | undefined;

/** Hangar's version: its package.json's, read once. */
export function packageVersion(): string {
  version ??= String(
    (JSON.parse(readFileSync(packagePath("package.json"), "utf8")) as { version?: unknown }).version,
  );
  return version;
}
