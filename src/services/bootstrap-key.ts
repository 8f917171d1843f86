import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { newSecret } from "../store/api-keys.ts";

/**
 * The bootstrap admin key: HANGAR_ADMIN_KEY, else the one stored in the data
 * dir, else a new one, written there (0600) for the operator to read.
 */
export async function resolveAdminKey(
  dataDir: string,
  configured: string | null,
): Promise<{ key: string; created: boolean; file: string | null }> {
  if (configured) return { key: configured, created: false, file: null };
  const file = path.join(dataDir, "admin-key");
  try {
    const stored = (await readFile(file, "utf8")).trim();
    if (stored) return { key: stored, created: false, file };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  await mkdir(dataDir, { recursive: true });
  const key = newSecret();
  // wx: two servers starting on one data dir must not both write a key.
  try {
    await writeFile(file, `${key}\n`, { mode: 0o600, flag: "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST") return resolveAdminKey(dataDir, configured);
    throw error;
  }
  await chmod(file, 0o600);
  return { key, created: true, file };
}
