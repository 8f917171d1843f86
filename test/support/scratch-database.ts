import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type Database, openDatabase } from "../../src/db/client.ts";

/**
 * A migrated embedded database of the test's own, for unit tests of the
 * controllers and the store (a few seconds to create: open one per file and
 * clear what a test leaves behind, rather than one per test).
 */
export async function scratchDatabase(): Promise<{ db: Database; dispose(): Promise<void> }> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "hangar-unit-"));
  const db = await openDatabase({ databaseUrl: null, dataDir });
  return {
    db,
    dispose: async () => {
      await db.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
