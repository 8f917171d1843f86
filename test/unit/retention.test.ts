/**
 * The retention sweep against a real (embedded) database and a real artifact store, with an injected
 * clock: which log lines and artifacts go, which stay, and that nothing goes on a guess.
 */
import { mkdir, mkdtemp, readdir, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Readable } from "node:stream";
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type Database, openDatabase } from "../../src/db/client.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import { newId } from "../../src/domain/ids.ts";
import { Retention } from "../../src/services/retention.ts";
import { ArtifactStore } from "../../src/store/artifacts.ts";
import { DatabaseArtifacts } from "../../src/store/shared-artifacts.ts";
import { modelFolder, pack } from "../support/client.ts";

const DAY = 24 * 60 * 60 * 1000;
const log = pino({ level: "silent" });

let dataDir: string;
let db: Database;
let store: ArtifactStore;
let clock: FakeClock;
let modelId: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "hangar-retention-"));
  db = await openDatabase({ databaseUrl: null, dataDir });
  modelId = newId("Model");
  await db.prisma.model.create({ data: { id: modelId, name: "retained" } });
});

afterAll(async () => {
  await db?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

beforeEach(async () => {
  clock = new FakeClock(Date.now());
  store = new ArtifactStore({
    root: path.join(dataDir, `artifacts-${Math.random()}`),
    maxUploadBytes: 1_000_000,
  });
  await db.prisma.logLine.deleteMany();
  await db.prisma.replica.deleteMany();
  await db.prisma.deployment.deleteMany();
});

const retention = (opts: { batchSize?: number } = {}) =>
  new Retention({ db, artifacts: store, retentionDays: 30, clock, log, ...opts });

const ago = (ms: number) => new Date(clock.now() - ms);

async function deployment(artifactHash: string, deletedDaysAgo: number | null = null): Promise<string> {
  const id = newId("Deployment");
  await db.prisma.deployment.create({
    data: {
      id,
      modelId,
      name: id,
      kind: "PUBLISHED",
      artifactHash,
      autoscaling: {},
      status: deletedDaysAgo === null ? "ACTIVE" : "DELETED",
      deletedAt: deletedDaysAgo === null ? null : ago(deletedDaysAgo * DAY),
    },
  });
  return id;
}

/** A stored artifact last marked used `daysAgo` days ago. */
async function artifact(tag: string, daysAgo: number): Promise<string> {
  const archive = await pack(await modelFolder({ "model.mjs": `export default class M {} // ${tag}` }));
  const stored = await store.put(Readable.from([archive]));
  await store.markUsed(stored.hash, ago(daysAgo * DAY));
  return stored.hash;
}

describe("log lines", () => {
  it("removes the lines older than the retention, a batch at a time, and keeps the newer ones", async () => {
    const id = await deployment("0".repeat(64));
    const line = (n: number, daysAgo: number) => ({
      deploymentId: id,
      stream: "stdout",
      line: `line ${n}`,
      at: ago(daysAgo * DAY),
    });
    // Written in time order, as lines are: 13 old ones, then 10 within the retention.
    await db.prisma.logLine.createMany({
      data: [
        ...Array.from({ length: 13 }, (_, n) => line(n, 50 - n)),
        ...Array.from({ length: 10 }, (_, n) => line(13 + n, 29 - n)),
      ],
    });
    const result = await retention({ batchSize: 5 }).sweep();
    expect(result.logLines).toBe(13);
    const left = await db.prisma.logLine.findMany({ orderBy: { id: "asc" } });
    expect(left.map((l) => l.line)).toEqual(Array.from({ length: 10 }, (_, n) => `line ${13 + n}`));
    // Nothing more to do the next time.
    expect((await retention({ batchSize: 5 }).sweep()).logLines).toBe(0);
  });
});

describe("artifacts", () => {
  it("keeps what a live deployment references however old, and removes what nobody referenced for the retention", async () => {
    const live = await artifact("live", 90);
    const deletedLongAgo = await artifact("deleted long ago", 45);
    const deletedRecently = await artifact("deleted recently", 45);
    const unreferencedLately = await artifact("unreferenced lately", 10);
    const unreferencedLong = await artifact("unreferenced long", 31);
    await deployment(live);
    await deployment(live, 40);
    await deployment(deletedLongAgo, 31);
    await deployment(deletedRecently, 5);

    const result = await retention().sweep();

    expect(result.artifacts).toBe(2);
    expect(await store.has(live)).toBe(true);
    expect(await store.has(deletedRecently)).toBe(true);
    expect(await store.has(unreferencedLately)).toBe(true);
    expect(await store.has(deletedLongAgo)).toBe(false);
    expect(await store.has(unreferencedLong)).toBe(false);
    // The live one is marked used now: were its deployment deleted today, its 30 days would start today.
    const marks = new Map((await store.stored()).map((a) => [a.hash, a.usedAt]));
    expect(marks.get(live)).toBeGreaterThanOrEqual(clock.now() - 1000);
    // Nothing of the removed ones is left, not even their temporary names.
    expect((await readdir(store.root)).filter((n) => n.startsWith(".tmp-"))).toEqual([]);
  });

  it("applies the same rule to the copies the members share through the database", async () => {
    store = new ArtifactStore({
      root: path.join(dataDir, `artifacts-${Math.random()}`),
      maxUploadBytes: 1_000_000,
      shared: new DatabaseArtifacts(db.prisma),
    });
    const live = await artifact("shared live", 90);
    const deletedLongAgo = await artifact("shared deleted long ago", 45);
    const unreferencedLately = await artifact("shared unreferenced lately", 10);
    // Received by another member: on no disk here, only in the database.
    const elsewhere = await artifact("shared from elsewhere", 40);
    await rm(store.dir(elsewhere), { recursive: true });
    await rm(store.archivePath(elsewhere));
    for (const [hash, days] of [
      [live, 90],
      [deletedLongAgo, 45],
      [unreferencedLately, 10],
      [elsewhere, 40],
    ] as const) {
      await db.prisma.artifactBlob.update({ where: { hash }, data: { usedAt: ago(days * DAY) } });
    }
    await deployment(live);
    await deployment(deletedLongAgo, 31);

    // Counted once each, whether the copy on this disk, the shared one, or both went.
    expect((await retention().sweep()).artifacts).toBe(2);
    const left = (await db.prisma.artifactBlob.findMany({ select: { hash: true } })).map((b) => b.hash);
    expect(left.sort()).toEqual([live, unreferencedLately].sort());
    expect(
      await db.prisma.artifactChunk.count({ where: { hash: { in: [deletedLongAgo, elsewhere] } } }),
    ).toBe(0);
    await db.prisma.artifactBlob.deleteMany();
  });

  it("puts an artifact back that was marked used after the sweep listed it (a push of the same bytes)", async () => {
    const hash = await artifact("raced", 60);
    await store.markUsed(hash);
    expect(await store.remove(hash, clock.now() - 30 * DAY)).toBe(false);
    expect(await store.has(hash)).toBe(true);
    expect(await store.remove(hash, clock.now() + 1000)).toBe(true);
    expect(await store.has(hash)).toBe(false);
  });

  it("marks a deduplicated upload used, so that the sweep does not take it before its deployment row exists", async () => {
    const archive = await pack(await modelFolder({ "model.mjs": "export default class M {} // again" }));
    const first = await store.put(Readable.from([archive]));
    await store.markUsed(first.hash, ago(60 * DAY));
    const again = await store.put(Readable.from([archive]));
    expect(again.deduplicated).toBe(true);
    expect((await retention().sweep()).artifacts).toBe(0);
    expect(await store.has(first.hash)).toBe(true);
  });

  it("removes nothing when the database cannot say what is referenced", async () => {
    const hash = await artifact("unknown", 60);
    const down = {
      prisma: { $queryRaw: () => Promise.reject(new Error("database unavailable")) },
    } as unknown as Database;
    const sweep = new Retention({ db: down, artifacts: store, retentionDays: 30, clock, log }).sweep();
    await expect(sweep).rejects.toThrow("database unavailable");
    expect(await store.has(hash)).toBe(true);
  });
});

describe("leftovers", () => {
  it("removes what an interrupted upload or extraction left, once it is old enough to be no one's work", async () => {
    await mkdir(store.root, { recursive: true });
    const old = path.join(store.root, ".tmp-0123456789abcdef");
    const upload = await store.tempPath("upload");
    const fresh = path.join(store.root, ".tmp-fedcba9876543210");
    await mkdir(old);
    await mkdir(path.join(old, "deep"));
    await mkdir(upload);
    await mkdir(fresh);
    const twoHoursAgo = new Date(Date.now() - 2 * 60 * 60 * 1000);
    await utimes(old, twoHoursAgo, twoHoursAgo);
    await utimes(upload, twoHoursAgo, twoHoursAgo);
    expect((await retention().sweep()).leftovers).toBe(2);
    expect(await readdir(store.root)).toEqual([path.basename(fresh)]);
  });
});

describe("members", () => {
  it("removes Hangar processes last seen a day ago, but not one whose replica is not marked stopped", async () => {
    const member = (id: string, lastSeenAt: Date) =>
      db.prisma.member.create({ data: { id, name: id, startedAt: ago(3 * DAY), lastSeenAt } });
    await member("alive", ago(1000));
    await member("gone-long-ago", ago(2 * DAY));
    await member("gone-with-a-replica", ago(2 * DAY));
    const deploymentId = await deployment("1".repeat(64));
    await db.prisma.replica.create({
      data: { id: newId("Replica"), deploymentId, owner: "gone-with-a-replica", startedAt: ago(3 * DAY) },
    });
    expect((await retention().sweep()).members).toBe(1);
    const left = await db.prisma.member.findMany({ select: { id: true }, orderBy: { id: "asc" } });
    expect(left.map((m) => m.id)).toEqual(["alive", "gone-with-a-replica"]);
  });
});

describe("sessions", () => {
  it("removes sessions and sign-in links a day after they stopped counting, and keeps live ones", async () => {
    const keyId = newId("ApiKey");
    await db.prisma.apiKey.create({
      data: { id: keyId, name: "k", role: "VIEWER", secretHash: keyId, prefix: "hk_x" },
    });
    const session = (tag: string, expiresAt: Date, endedAt: Date | null) =>
      db.prisma.session.create({
        data: { id: newId("Session"), tokenHash: `${keyId}-${tag}`, apiKeyId: keyId, expiresAt, endedAt },
      });
    await session("live", ago(-DAY), null);
    await session("ended-long-ago", ago(-DAY), ago(2 * DAY));
    await session("ended-just-now", ago(-DAY), ago(1000));
    await session("expired-long-ago", ago(2 * DAY), null);
    await db.prisma.signInLink.create({
      data: { id: newId("SignInLink"), tokenHash: `${keyId}-old`, apiKeyId: keyId, expiresAt: ago(2 * DAY) },
    });
    await db.prisma.signInLink.create({
      data: { id: newId("SignInLink"), tokenHash: `${keyId}-new`, apiKeyId: keyId, expiresAt: ago(-DAY) },
    });
    expect((await retention().sweep()).sessions).toBe(3);
    const left = await db.prisma.session.findMany({
      where: { apiKeyId: keyId },
      select: { tokenHash: true },
    });
    expect(left.map((s) => s.tokenHash).sort()).toEqual([`${keyId}-ended-just-now`, `${keyId}-live`]);
    expect(await db.prisma.signInLink.count({ where: { apiKeyId: keyId } })).toBe(1);
  });
});
