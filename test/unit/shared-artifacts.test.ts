// Artifacts shared between members through the database (store/shared-artifacts.ts), with two
// ArtifactStores on their own disks as two members have: what one received, the other fetches, checks
// and extracts; what is damaged or hostile on the way is refused and leaves nothing.
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import * as tar from "tar";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/client.ts";
import { ArtifactStore, InvalidArchiveError } from "../../src/store/artifacts.ts";
import { DamagedArtifactError, DatabaseArtifacts } from "../../src/store/shared-artifacts.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

let scratch: Awaited<ReturnType<typeof scratchDatabase>>;
let db: Database;
let work: string;
let shared: DatabaseArtifacts;

beforeAll(async () => {
  scratch = await scratchDatabase();
  db = scratch.db;
});

afterAll(async () => {
  await scratch?.dispose();
});

beforeEach(async () => {
  work = await mkdtemp(path.join(tmpdir(), "hangar-shared-artifacts-"));
  // Small chunks, so that every upload here spans many of them.
  shared = new DatabaseArtifacts(db.prisma, 1000);
});

afterEach(async () => {
  await db.prisma.artifactBlob.deleteMany({});
  await rm(work, { recursive: true, force: true });
});

const member = (name: string) =>
  new ArtifactStore({ root: path.join(work, name), maxUploadBytes: 10 * 1024 * 1024, shared });

const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");

/** A model folder's gzip'd tar with incompressible weights, several chunks long. */
async function upload(): Promise<Buffer> {
  const dir = await mkdtemp(path.join(work, "src-"));
  await writeFile(path.join(dir, "model.mjs"), "export default class Model { predict() { return 1; } }\n");
  await writeFile(path.join(dir, "weights.bin"), randomBytes(5000));
  const file = path.join(work, `${randomBytes(4).toString("hex")}.tgz`);
  await tar.c({ gzip: true, file, cwd: dir }, ["."]);
  return readFile(file);
}

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  yield data;
}

/** Names in a member's store that are not work in progress. */
async function listing(store: ArtifactStore): Promise<string[]> {
  return (await readdir(store.root).catch(() => [] as string[])).sort();
}

describe("artifacts shared through the database", () => {
  it("lets a member build what another member received: same bytes, same folder", async () => {
    const a = member("a");
    const b = member("b");
    const bytes = await upload();
    const stored = await a.put(once(bytes));
    expect(await db.prisma.artifactChunk.count({ where: { hash: stored.hash } })).toBeGreaterThan(5);

    expect(await b.has(stored.hash)).toBe(false);
    expect(await b.ensure(stored.hash)).toBe(true);
    expect(sha256(await readFile(b.archivePath(stored.hash)))).toBe(stored.hash);
    expect(await readFile(path.join(b.dir(stored.hash), "weights.bin"))).toEqual(
      await readFile(path.join(a.dir(stored.hash), "weights.bin")),
    );
    expect(await listing(b)).toEqual([stored.hash, `${stored.hash}.tar.gz`]);
  });

  it("shares the same bytes once, however many members push them", async () => {
    const bytes = await upload();
    const [first, second] = await Promise.all([member("a").put(once(bytes)), member("b").put(once(bytes))]);
    expect(second.hash).toBe(first.hash);
    expect(await db.prisma.artifactBlob.findMany({ select: { hash: true, complete: true } })).toEqual([
      { hash: first.hash, complete: true },
    ]);
    expect(await member("c").ensure(first.hash)).toBe(true);
  });

  it("says false for an upload no member shared, or one whose sharing never finished", async () => {
    const b = member("b");
    expect(await b.ensure("0".repeat(64))).toBe(false);
    const bytes = await upload();
    const hash = sha256(bytes);
    // A member that died while sharing: the row and some chunks, never completed.
    await db.prisma.artifactBlob.create({ data: { hash, usedAt: new Date() } });
    await db.prisma.artifactChunk.create({
      data: { hash, seq: 0, data: new Uint8Array(bytes.subarray(0, 1000)) },
    });
    expect(await b.ensure(hash)).toBe(false);
    expect(await listing(b)).toEqual([]);
    // A later push of the same bytes completes it.
    await member("a").put(once(bytes));
    expect(await b.ensure(hash)).toBe(true);
  });

  it("refuses a shared upload whose bytes changed in the database, and keeps nothing of it", async () => {
    const stored = await member("a").put(once(await upload()));
    await db.prisma.artifactChunk.update({
      where: { hash_seq: { hash: stored.hash, seq: 2 } },
      data: { data: new Uint8Array(1000) },
    });
    const b = member("b");
    await expect(b.ensure(stored.hash)).rejects.toBeInstanceOf(DamagedArtifactError);
    await db.prisma.artifactChunk.delete({ where: { hash_seq: { hash: stored.hash, seq: 3 } } });
    await expect(b.ensure(stored.hash)).rejects.toThrow(/lacks chunk 3/);
    expect(await listing(b)).toEqual([]);
  });

  it("checks a fetched upload as an upload is checked: a hostile archive is extracted nowhere", async () => {
    // What a member with a bug (or an attacker with the database) could have shared.
    const header = new tar.Header({ path: "../escape.txt", type: "File", size: 2, mode: 0o644 });
    const block = Buffer.alloc(512);
    header.encode(block, 0);
    const hostile = gzipSync(
      Buffer.concat([block, Buffer.from("hi"), Buffer.alloc(510), Buffer.alloc(1024)]),
    );
    const file = path.join(work, "hostile.tgz");
    await writeFile(file, hostile);
    await shared.share(sha256(hostile), file, hostile.length);
    const b = member("b");
    await expect(b.ensure(sha256(hostile))).rejects.toBeInstanceOf(InvalidArchiveError);
    expect(await listing(b)).toEqual([]);
    expect(await readdir(work)).not.toContain("escape.txt");
  });

  it("removes a shared upload only when unused since the cutoff, chunks and all", async () => {
    const stored = await member("a").put(once(await upload()));
    const usedAt = (await shared.list())[0]?.usedAt ?? 0;
    expect(await shared.remove(stored.hash, usedAt)).toBe(false);
    expect(await shared.remove(stored.hash, usedAt + 1)).toBe(true);
    expect(await db.prisma.artifactChunk.count({ where: { hash: stored.hash } })).toBe(0);
    expect(await member("b").ensure(stored.hash)).toBe(false);
    // The member that has it on its disk shares it again on its next push of it.
    await member("a").put(once(await readFile(member("a").archivePath(stored.hash))));
    expect(await member("b").ensure(stored.hash)).toBe(true);
  });
});
