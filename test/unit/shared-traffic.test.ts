/**
 * Shared traffic counts (API.md section 10): what a member's meter says of each second, and how the
 * TrafficSecond table sums the other members' seconds (a real embedded database; the SQL is the same on
 * a PostgreSQL server).
 */
import { pino } from "pino";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/client.ts";
import { FakeClock } from "../../src/domain/clock.ts";
import {
  emptyLatencyCounts,
  LATENCY_BOUNDS_MS,
  latencyBucket,
  latencyQuantile,
} from "../../src/metrics/latency.ts";
import { SharedTraffic } from "../../src/metrics/shared-traffic.ts";
import { TrafficMeter } from "../../src/metrics/traffic.ts";
import { TrafficFigures } from "../../src/metrics/traffic-figures.ts";
import {
  otherMembersAnswers,
  otherMembersConcurrency,
  pruneTrafficSeconds,
  writeTrafficSeconds,
} from "../../src/store/traffic.ts";
import { scratchDatabase } from "../support/scratch-database.ts";

const T0 = 1_800_000_000_000; // a whole second
const log = pino({ level: "silent" });

describe("TrafficMeter.secondsSince", () => {
  it("gives each second's answers, failures, latencies and busy time, and what is in flight now", () => {
    const clock = new FakeClock(T0);
    const meter = new TrafficMeter(clock);
    const first = meter.started("d");
    clock.advance(500);
    meter.answered("d", 200, first);
    meter.finished("d");
    const second = meter.started("d");
    meter.started("d");
    clock.advance(1_000); // 1.5 s: two in flight since 0.5 s
    meter.answered("d", 503, second);
    meter.finished("d");
    const s = T0 / 1000;
    const latency = (ms: number) => {
      const counts = emptyLatencyCounts();
      counts[latencyBucket(ms)] = 1;
      return counts;
    };
    expect(meter.secondsSince(s)).toEqual([
      {
        deploymentId: "d",
        environmentId: "",
        second: s,
        answered: 1,
        failed: 0,
        busyMs: 500 + 2 * 500,
        inFlight: 1,
        latencyMs: 500,
        latency: latency(500),
        coldStarts: 0,
        coldStartMs: 0,
        coldStartLatency: emptyLatencyCounts(),
      },
      {
        deploymentId: "d",
        environmentId: "",
        second: s + 1,
        answered: 1,
        failed: 1,
        busyMs: 2 * 500,
        inFlight: 1,
        latencyMs: 1000,
        latency: latency(1000),
        coldStarts: 0,
        coldStartMs: 0,
        coldStartLatency: emptyLatencyCounts(),
      },
    ]);
    // 500 ms falls in the bucket up to 500 ms, 1 s in the one up to 1 s.
    expect(LATENCY_BOUNDS_MS[latencyBucket(500)]).toBe(500);
    expect(LATENCY_BOUNDS_MS[latencyBucket(1000)]).toBe(1000);
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(61_000)).toBe(LATENCY_BOUNDS_MS.length);
    // Only the seconds asked for; a deployment idle since before them says nothing.
    expect(meter.secondsSince(s + 1).map((r) => r.second)).toEqual([s + 1]);
    meter.finished("d");
    clock.advance(3_000);
    expect(meter.secondsSince(s + 3)).toEqual([]);
  });

  it("reports a request in flight over seconds without answers, for every second it spans", () => {
    const clock = new FakeClock(T0);
    const meter = new TrafficMeter(clock);
    meter.started("slow");
    clock.advance(2_500);
    const rows = meter.secondsSince(T0 / 1000);
    expect(rows.map((r) => [r.busyMs, r.answered, r.inFlight])).toEqual([
      [1000, 0, 1],
      [1000, 0, 1],
      [500, 0, 1],
    ]);
  });
});

describe("the TrafficSecond table", () => {
  let db: Database;
  let dispose: () => Promise<void>;
  const s = T0 / 1000;
  const row = (
    deploymentId: string,
    second: number,
    answered: number,
    failed: number,
    busyMs = 0,
    inFlight = 0,
    environmentId = "",
  ) => ({
    deploymentId,
    environmentId,
    second,
    answered,
    failed,
    busyMs,
    inFlight,
    latencyMs: 0,
    latency: emptyLatencyCounts(),
    coldStarts: 0,
    coldStartMs: 0,
    coldStartLatency: emptyLatencyCounts(),
  });

  beforeAll(async () => {
    ({ db, dispose } = await scratchDatabase());
  });
  afterAll(async () => {
    await dispose?.();
  });
  beforeEach(async () => {
    await db.prisma.$executeRaw`DELETE FROM "TrafficSecond"`;
    await db.prisma.$executeRaw`DELETE FROM "TrafficMinute"`;
    await db.prisma.$executeRaw`DELETE FROM "ColdStart"`;
  });

  it("sums the other members' answers from a second on, not the reader's own", async () => {
    await writeTrafficSeconds(db.prisma, "a", [row("d", s, 5, 1), row("d", s + 1, 7, 2)]);
    await writeTrafficSeconds(db.prisma, "b", [row("d", s + 1, 3, 3), row("other", s + 1, 100, 100)]);
    await writeTrafficSeconds(db.prisma, "self", [row("d", s + 1, 50, 50)]);
    expect(await otherMembersAnswers(db.prisma, "self", "d", s + 1)).toEqual({
      answered: 10,
      failed: 5,
      inFlight: 0,
    });
    expect(await otherMembersAnswers(db.prisma, "self", "d", s)).toMatchObject({ answered: 15, failed: 6 });
  });

  it("sets a second's figures when a member writes it again (it never adds them up)", async () => {
    await writeTrafficSeconds(db.prisma, "a", [row("d", s, 1, 0)]);
    await writeTrafficSeconds(db.prisma, "a", [row("d", s, 4, 1)]);
    expect(await otherMembersAnswers(db.prisma, "self", "d", s)).toMatchObject({ answered: 4, failed: 1 });
  });

  it("gives busy time in the window, the last second with activity, and each member's latest in flight", async () => {
    await writeTrafficSeconds(db.prisma, "a", [row("d", s - 100, 1, 0, 10), row("d", s, 0, 0, 700, 2)]);
    await writeTrafficSeconds(db.prisma, "a", [row("d", s + 1, 0, 0, 1000, 1)]);
    await writeTrafficSeconds(db.prisma, "b", [row("d", s + 1, 2, 0, 300, 3)]);
    const figures = await otherMembersConcurrency(db.prisma, "self", [
      { deploymentId: "d", busySince: s - 10, activeSince: s - 200 },
      { deploymentId: "quiet", busySince: s - 10, activeSince: s - 200 },
    ]);
    expect(figures.get("d")).toEqual({ busyMs: 2000, inFlight: 1 + 3, lastActivityAt: (s + 2) * 1000 });
    expect(figures.get("quiet")).toEqual({ busyMs: 0, inFlight: 0, lastActivityAt: 0 });
  });

  it("prunes the seconds before a cutoff", async () => {
    await writeTrafficSeconds(db.prisma, "a", [row("d", s - 5000, 1, 0), row("d", s, 1, 0)]);
    expect(await pruneTrafficSeconds(db.prisma, s - 3700)).toBe(1);
    expect(await otherMembersAnswers(db.prisma, "self", "d", 0)).toMatchObject({ answered: 1 });
  });

  it("is written by SharedTraffic from a member's meter, the current second again at the next write", async () => {
    const clock = new FakeClock(T0);
    const meter = new TrafficMeter(clock);
    const writer = new SharedTraffic(db.prisma, "a", meter, clock, log);
    let since = meter.started("d");
    clock.advance(3);
    meter.answered("d", 500, since);
    meter.finished("d");
    await writer.write();
    since = meter.started("d");
    clock.advance(40);
    meter.answered("d", 200, since);
    meter.finished("d");
    clock.advance(960);
    since = meter.started("d");
    meter.answered("d", 200, since);
    await writer.write();
    expect(await otherMembersAnswers(db.prisma, "self", "d", s)).toEqual({
      answered: 3,
      failed: 1,
      inFlight: 1,
    });
    // Each second's latencies, in their buckets: 3 ms and 40 ms, then under 1 ms.
    const stored = await db.prisma.$queryRaw<{ second: bigint; latencyMs: number; latency: number[] }[]>`
      SELECT second, "latencyMs", latency FROM "TrafficSecond" WHERE "memberId" = 'a' ORDER BY second`;
    const inBuckets = (...ms: number[]) => {
      const counts = emptyLatencyCounts();
      for (const m of ms) counts[latencyBucket(m)] = (counts[latencyBucket(m)] as number) + 1;
      return counts;
    };
    expect(stored.map((r) => [Number(r.second), r.latencyMs, r.latency])).toEqual([
      [s, 43, inBuckets(3, 40)],
      [s + 1, 0, inBuckets(0)],
    ]);
    // The writer's own rows are not "others" to it.
    expect(await writer.answers("d", s)).toEqual({ answered: 0, failed: 0, inFlight: 0 });
  });
});

describe("latencyQuantile", () => {
  it("interpolates within the bucket the rank falls in, and says null without answers", () => {
    expect(latencyQuantile(emptyLatencyCounts(), 0.5)).toBeNull();
    const counts = emptyLatencyCounts();
    // 10 answers in the bucket (50, 100] ms: the median lies halfway through it.
    counts[latencyBucket(80)] = 10;
    expect(latencyQuantile(counts, 0.5)).toBe(75);
    expect(latencyQuantile(counts, 1)).toBe(100);
    // One answer slower than a minute: the last bound is all the buckets can say of it.
    counts[LATENCY_BOUNDS_MS.length] = 1;
    expect(latencyQuantile(counts, 0.99)).toBe(60_000);
  });
});

describe("traffic figures (TrafficMinute, ColdStart, TrafficFigures)", () => {
  let db: Database;
  let dispose: () => Promise<void>;
  beforeAll(async () => {
    ({ db, dispose } = await scratchDatabase());
  });
  afterAll(async () => {
    await dispose?.();
  });

  it("counts answers by the environment they came through, rolls them up by the minute, and sums every member", async () => {
    const clock = new FakeClock(T0 + 30_000); // half a minute in
    const a = new TrafficMeter(clock);
    const b = new TrafficMeter(clock);
    const writerA = new SharedTraffic(db.prisma, "a", a, clock, log);
    const writerB = new SharedTraffic(db.prisma, "b", b, clock, log);
    const answer = (meter: TrafficMeter, ms: number, status: number, environmentId = "") => {
      const since = meter.started("d");
      clock.advance(ms);
      meter.answered("d", status, since, environmentId);
      meter.finished("d");
    };
    answer(a, 20, 200, "env_1");
    answer(a, 20, 503, "env_1");
    answer(a, 5, 200);
    answer(b, 20, 200, "env_1");
    const requestedAt = clock.now();
    clock.advance(400);
    a.coldStarted({
      modelId: "m",
      deploymentId: "d",
      environmentId: "env_1",
      replicaId: "rep_1",
      requestedAt,
      processStartedAt: requestedAt + 10,
      modelLoadedAt: requestedAt + 300,
      answeredAt: clock.now(),
    });
    await writerA.write();
    await writerB.write();
    // In flight is on the "" rows only, whatever the environments' rows say.
    b.started("d");
    await writerB.write();
    expect(await otherMembersAnswers(db.prisma, "a", "d", 0)).toEqual({
      answered: 1,
      failed: 0,
      inFlight: 1,
    });

    const figures = new TrafficFigures(db.prisma, () => writerA.write(), clock);
    const ofDeployment = await figures.metrics({ deploymentId: "d" }, 60);
    expect(ofDeployment).toMatchObject({ windowSeconds: 60, requests: 4, errors: 1, coldStarts: 1 });
    expect(ofDeployment.requestsPerSecond).toBeCloseTo(4 / 60);
    expect(ofDeployment.latencyMs.p50).toBeGreaterThan(10);
    expect(ofDeployment.latencyMs.p50).toBeLessThanOrEqual(25);
    expect(ofDeployment.coldStartMs.p50).toBeGreaterThan(250);
    expect(ofDeployment.coldStartMs.p50).toBeLessThanOrEqual(500);
    const ofEnvironment = await figures.metrics({ environmentId: "env_1" }, 60);
    expect(ofEnvironment).toMatchObject({ requests: 3, errors: 1, coldStarts: 1 });
    // A window that ends before the answers has none of them.
    clock.advance(120_000);
    expect(await figures.metrics({ deploymentId: "d" }, 60)).toMatchObject({ requests: 0, coldStarts: 0 });
    expect((await figures.metrics({ deploymentId: "d" }, 60)).latencyMs).toEqual({
      p50: null,
      p95: null,
      p99: null,
    });

    // By the minute: every member's rows of the minute, in the series of a day.
    const minute = Math.floor(T0 / 60_000);
    const stored = await db.prisma.trafficMinute.findMany({
      orderBy: [{ memberId: "asc" }, { environmentId: "asc" }],
    });
    expect(
      stored.map((r) => [r.memberId, r.environmentId, Number(r.minute), r.answered, r.failed, r.coldStarts]),
    ).toEqual([
      ["a", "", minute, 1, 0, 0],
      ["a", "env_1", minute, 2, 1, 1],
      ["b", "env_1", minute, 1, 0, 0],
    ]);
    const day = await figures.series({ deploymentId: "d" }, 24 * 3600, 3600);
    expect(day).toHaveLength(24);
    expect(day.reduce((sum, p) => sum + p.requests, 0)).toBe(4);
    expect(day.at(-1)?.at.getTime()).toBe(Math.floor(clock.now() / 3_600_000) * 3_600_000);
    const hour = await figures.series({ environmentId: "env_1" }, 3600, 60);
    expect(hour).toHaveLength(60);
    const busy = hour.filter((p) => p.requests > 0);
    expect(busy.map((p) => [p.at.getTime(), p.requests, p.errors])).toEqual([[minute * 60_000, 3, 1]]);
    await expect(figures.series({ deploymentId: "d" }, 7200, 90)).rejects.toThrow(/whole number of minutes/);
    await expect(figures.metrics({ deploymentId: "d" }, 0)).rejects.toThrow(/windowSeconds/);
    await expect(figures.series({ deploymentId: "d" }, 3600, 1)).rejects.toThrow(/at most 1440 points/);

    // The cold start's record, with its phases.
    const [record] = await db.prisma.coldStart.findMany();
    expect(record).toMatchObject({ deploymentId: "d", memberId: "a", replicaId: "rep_1", durationMs: 400 });
    expect(record?.modelLoadedAt?.getTime()).toBe(requestedAt + 300);
  });
});
