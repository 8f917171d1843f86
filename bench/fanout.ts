/**
 * Subscription fan-out benchmark (issue 5, canary ramp): N clients subscribed over graphql-ws to one
 * promotion's progress; for every canary stage change, the time until each client has it (p50, p99
 * of the per-client delays, and the time to the last client), and the server's memory per idle
 * subscriber. Goals: p99 under 250 ms at 10,000 subscribers, under 20 KB per idle subscriber.
 *
 *   npm run bench:fanout -- [--sizes 1000,10000] [--baseline-sizes 1000] [--floor-sizes 10000]
 *                           [--processes 2] [--stage-seconds 3] [--profile DIR] [--json]
 *
 * Each measurement starts its own Hangar (child process, embedded database, `--expose-gc`, so that
 * SIGUSR2 makes it collect garbage and log its memory: src/memory-probe.ts), pushes a model, serves
 * it in an environment with rampUpWhilePromoting, pushes a second version and promotes it. Once the
 * ramp is at its first stage the promotion is paused; the clients (bench/support/fanout-client.ts,
 * in several processes) connect and subscribe to promotionProgress, each getting the paused promotion
 * as its first message. Memory is read (after a forced GC) before the first client connects and once
 * every client is subscribed and idle. Then the promotion is resumed: stages 2..10 follow every
 * `--stage-seconds`, then ACTIVATE and the end. A stage change's time is its CANARY_STAGE_CHANGED
 * event's `at` (written in the transaction that makes the change); a client has it when the message
 * with that stage arrives (clients and server share this machine's clock). Every client must get
 * every stage once, in order, and the end; the run fails otherwise.
 *
 * The baseline is the same run with HANGAR_SHARED_SUBSCRIPTIONS=0 (one execution per subscriber).
 * The floor is what this machine allows at all: a bare `ws` server (bench/support/fanout-floor.ts)
 * sending each stage, serialized once, to the same clients; its stage time is when it starts sending.
 * 10,000 clients need 10,000 file descriptors in Hangar and count/processes in each client process:
 * raise `ulimit -n` first if it is lower (the run checks).
 */
import { execFileSync } from "node:child_process";
import os from "node:os";
import { parseArgs } from "node:util";
import type { ClientRecord } from "./support/fanout-client.ts";
import {
  type BenchHangar,
  gql,
  modelFolder,
  pushFolder,
  startHangar,
  waitForActive,
} from "./support/hangar.ts";
import { numberOption } from "./support/options.ts";
import { cleanUpOnSignals, cleanup, type Spawned, spawnNode } from "./support/processes.ts";

const P99_GOAL_MS = 250;
const MEMORY_GOAL_KB = 20;
const GOAL_SIZE = 10_000;

const USAGE = `usage: npm run bench:fanout -- [options]
  --sizes N,N          subscriber counts with sharing on (default 1000,10000)
  --baseline-sizes N,N subscriber counts with sharing off, HANGAR_SHARED_SUBSCRIPTIONS=0 (default 1000; "" for none)
  --floor-sizes N,N    subscriber counts for the floor, a bare ws server (default 10000; "" for none)
  --processes N        client processes (default 2)          env BENCH_FANOUT_PROCESSES
  --stage-seconds S    ramp time per canary stage (default 3) env BENCH_FANOUT_STAGE_SECONDS
  --profile DIR        write a --cpu-prof profile of each Hangar run into DIR
  --json               print the figures as JSON instead of a table`;

// What a dashboard watching a promotion asks for; status and canaryStage first (the clients read them
// without parsing the whole message).
const QUERY = `subscription Progress($id: ID!) {
  promotionProgress(promotionId: $id) {
    status canaryStage percentTrafficToNewVersion id errorMessage
    steps { name status startedAt finishedAt message }
    deployment { id name status } previousDeployment { id name status }
  }
}`;

const MODEL = (version: number) => ({
  "model.mjs": `export default class M { predict() { return { version: ${version} }; } }`,
});

/** Hangar with sharing on, with it off (the baseline), or the bare-ws floor. */
type Server = "on" | "off" | "floor";
const SERVER_LABELS: Record<Server, string> = {
  on: "Hangar, sharing on",
  off: "Hangar, sharing off",
  floor: "floor (bare ws)",
};

interface Settings {
  processes: number;
  stageSeconds: number;
  profileDir: string | undefined;
}

interface Measurement {
  server: Server;
  clients: number;
  processes: number;
  /** Per-client delay from a stage change to its arrival, over every client and stage change. */
  delayMs: { p50: number; p99: number; max: number };
  /** Per stage change: time until the last client had it. */
  lastClientMs: { median: number; max: number; perStage: Record<number, number> };
  stagesMeasured: number;
  /** Hangar's memory per idle subscriber (null for the floor). */
  memory: {
    rssKBPerSubscriber: number;
    heapKBPerSubscriber: number;
    rssBeforeMB: number;
    rssIdleMB: number;
  } | null;
  connectSeconds: number;
  /** The machine's one-minute load average when the measurement started and ended. */
  load: [number, number];
  /** What the server said it was running while idle: shared executions and their subscribers. */
  serverSubscriptions: { upstreams: number; subscribers: number } | null;
}

const log = (line: string) => process.stderr.write(`${line}\n`);

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

function sizes(raw: string | undefined, fallback: number[]): number[] {
  if (raw === undefined) return fallback;
  const values = raw
    .split(",")
    .filter((s) => s.trim() !== "")
    .map(Number);
  if (values.some((v) => !Number.isInteger(v) || v <= 0)) {
    process.stderr.write(`invalid sizes '${raw}'\n${USAGE}\n`);
    process.exit(2);
  }
  return values;
}

function fileLimit(): number {
  try {
    return Number(execFileSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).trim()) || 1024;
  } catch {
    return 1024;
  }
}

interface MemoryReading {
  rss: number;
  heapUsed: number;
  subscriptions?: { upstreams: number; subscribers: number };
}

/** SIGUSR2: Hangar collects garbage and logs its memory (src/memory-probe.ts); the new line's figures. */
async function probeMemory(hangar: BenchHangar): Promise<MemoryReading> {
  const lines = () =>
    hangar.process
      .stdout()
      .split("\n")
      .filter((l) => l.includes('"memory probe"'));
  const before = lines().length;
  hangar.process.child.kill("SIGUSR2");
  const deadline = Date.now() + 60_000;
  for (;;) {
    const all = lines();
    if (all.length > before) {
      const entry = JSON.parse(all[before] as string) as {
        memory: { rss: number; heapUsed: number };
        subscriptions?: MemoryReading["subscriptions"];
      };
      return { ...entry.memory, subscriptions: entry.subscriptions };
    }
    if (Date.now() > deadline) throw new Error("Hangar did not answer the memory probe");
    await new Promise((r) => setTimeout(r, 50));
  }
}

const PROMOTION_STATE = `query($id: ID!) { promotion(id: $id) { status canaryStage } }`;

async function waitPromotion(
  hangar: BenchHangar,
  id: string,
  done: (p: { status: string; canaryStage: number | null }) => boolean,
  what: string,
) {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const p = (await gql(hangar, PROMOTION_STATE, { id })).promotion;
    if (done(p)) return p;
    if (["FAILED", "CANCELED"].includes(p.status))
      throw new Error(`promotion ${p.status} waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last ${JSON.stringify(p)})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A model served in "live" by v1, and a promotion of v2 paused at its first canary stage. */
async function pausedRamp(hangar: BenchHangar, stageSeconds: number) {
  const v1 = await pushFolder(hangar, "fanout", await modelFolder(MODEL(1)));
  await waitForActive(hangar, v1.deploymentId);
  const env = (
    await gql(
      hangar,
      `mutation($input: CreateEnvironmentInput!) { createEnvironment(input: $input) { ... on Environment { id } ... on Error { message } } }`,
      {
        input: {
          modelId: v1.modelId,
          name: "live",
          promotionSettings: { rampUpWhilePromoting: true, rampUpDurationSeconds: stageSeconds * 10 },
        },
      },
    )
  ).createEnvironment;
  const promote = async (deploymentId: string): Promise<string> => {
    const result = (
      await gql(
        hangar,
        `mutation($id: ID!) { promote(input: { deploymentId: $id, environment: "live" }) { ... on Promotion { id } ... on Error { message } } }`,
        { id: deploymentId },
      )
    ).promote;
    if (!result.id) throw new Error(`promote failed: ${result.message}`);
    return result.id;
  };
  const first = await promote(v1.deploymentId);
  await waitPromotion(hangar, first, (p) => p.status === "SUCCEEDED", "the first promotion");
  const v2 = await pushFolder(hangar, "fanout", await modelFolder(MODEL(2)));
  await waitForActive(hangar, v2.deploymentId);
  const promotionId = await promote(v2.deploymentId);
  await waitPromotion(hangar, promotionId, (p) => (p.canaryStage ?? 0) >= 1, "the ramp to start");
  const paused = (
    await gql(
      hangar,
      `mutation($id: ID!) { pausePromotion(environmentId: $id) { ... on Promotion { status canaryStage } ... on Error { message } } }`,
      { id: env.id },
    )
  ).pausePromotion;
  if (paused.status !== "PAUSED") throw new Error(`pause failed: ${JSON.stringify(paused)}`);
  return {
    modelId: v1.modelId,
    envId: env.id as string,
    promotionId,
    pausedAt: paused.canaryStage as number,
  };
}

/** When each canary stage of the promotion began: its CANARY_STAGE_CHANGED event's `at`. */
async function stageTimes(hangar: BenchHangar, modelId: string, promotionId: string) {
  const events = (
    await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { events(first: 500) { edges { node { type at message promotion { id } } } } } }`,
      { id: modelId },
    )
  ).model.events.edges.map(
    (e: { node: { type: string; at: string; message: string; promotion: { id: string } | null } }) => e.node,
  );
  const times = new Map<number, number>();
  for (const event of events) {
    if (event.type !== "CANARY_STAGE_CHANGED" || event.promotion?.id !== promotionId) continue;
    const stage = Number(/canary stage (\d+) of/.exec(event.message)?.[1]);
    if (stage) times.set(stage, Date.parse(event.at));
  }
  return times;
}

interface Run {
  /** What the clients received. */
  records: ClientRecord[];
  /** When each measured stage change happened (ms since the epoch). */
  times: Map<number, number>;
  /** The stage the clients start at (their first message). */
  fromStage: number;
  connectSeconds: number;
  memory: Measurement["memory"] | null;
  serverSubscriptions: Measurement["serverSubscriptions"];
}

/** Starts the client processes on `url`; resolves once every client has its first message. */
async function startClients(url: string, key: string, promotionId: string, size: number, processes: number) {
  const perProcess = Array.from(
    { length: processes },
    (_, i) => Math.floor(size / processes) + (i < size % processes ? 1 : 0),
  ).filter((n) => n > 0);
  const clients = perProcess.map((count, i) =>
    spawnNode(`fanout-client-${i}`, ["--import", "tsx", "bench/support/fanout-client.ts"], {
      env: {
        ...process.env,
        FANOUT_CLIENT: JSON.stringify({
          url,
          key,
          query: QUERY,
          variables: { id: promotionId },
          count,
          concurrency: 50,
        }),
      },
    }),
  );
  const started = performance.now();
  await Promise.all(clients.map((c) => c.waitForLine(/^ready (\d+)$/m, 600_000)));
  return { clients, connectSeconds: (performance.now() - started) / 1000 };
}

/** Every client's records, once every subscription has ended and the client processes have exited. */
async function clientRecords(clients: Spawned[], timeoutMs: number): Promise<ClientRecord[]> {
  const results = await Promise.all(
    clients.map(async (c) => {
      // The result is one long line: read it once the process has written it all and exited.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        c.exited,
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error("the clients did not all complete")), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      const line = c
        .stdout()
        .split("\n")
        .find((l) => l.startsWith("result "));
      if (!line) throw new Error(`a client process ended without results:\n${c.output().slice(-2000)}`);
      return JSON.parse(line.slice("result ".length)) as ClientRecord[];
    }),
  );
  return results.flat();
}

/** Hangar, with sharing on or off. */
async function hangarRun(label: string, size: number, sharing: boolean, settings: Settings): Promise<Run> {
  const profile = settings.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${settings.profileDir}`] : [];
  const hangar = await startHangar({
    nodeArgs: ["--expose-gc", ...profile],
    logLevel: "info",
    env: { HANGAR_SHARED_SUBSCRIPTIONS: sharing ? "1" : "0" },
  });
  let clients: Spawned[] = [];
  try {
    const { modelId, envId, promotionId, pausedAt } = await pausedRamp(hangar, settings.stageSeconds);
    const before = await probeMemory(hangar);
    const started = await startClients(hangar.url, hangar.key, promotionId, size, settings.processes);
    clients = started.clients;
    log(`${label}: all subscribed in ${started.connectSeconds.toFixed(1)} s; reading idle memory...`);
    // Let the connections' setup garbage and timers settle before the reading.
    await new Promise((r) => setTimeout(r, 2_000));
    const idle = await probeMemory(hangar);
    const running = idle.subscriptions;
    if (sharing && (running?.upstreams !== 1 || running.subscribers !== size)) {
      throw new Error(
        `${label}: expected one shared execution for ${size} subscribers, Hangar runs ${JSON.stringify(running)}`,
      );
    }
    log(`${label}: resuming the ramp (a stage every ${settings.stageSeconds} s)...`);
    await gql(hangar, `mutation($id: ID!) { resumePromotion(environmentId: $id) { __typename } }`, {
      id: envId,
    });
    const records = await clientRecords(clients, (settings.stageSeconds * 12 + 600) * 1000);
    return {
      records,
      times: await stageTimes(hangar, modelId, promotionId),
      fromStage: pausedAt,
      connectSeconds: started.connectSeconds,
      memory: {
        rssKBPerSubscriber: (idle.rss - before.rss) / size / 1024,
        heapKBPerSubscriber: (idle.heapUsed - before.heapUsed) / size / 1024,
        rssBeforeMB: before.rss / 1024 / 1024,
        rssIdleMB: idle.rss / 1024 / 1024,
      },
      serverSubscriptions: idle.subscriptions ?? null,
    };
  } finally {
    for (const client of clients) await client.stop();
    await hangar.process.stop();
  }
}

/** The floor: a bare ws server sending each stage serialized once (bench/support/fanout-floor.ts). */
async function floorRun(label: string, size: number, settings: Settings): Promise<Run> {
  const fromStage = 1;
  const floor = spawnNode("fanout-floor", ["--import", "tsx", "bench/support/fanout-floor.ts"], {
    env: {
      ...process.env,
      FANOUT_FLOOR: JSON.stringify({ count: size, stageSeconds: settings.stageSeconds, fromStage }),
    },
  });
  let clients: Spawned[] = [];
  try {
    const port = Number((await floor.waitForLine(/^port (\d+)$/m, 30_000))[1]);
    const started = await startClients(`http://127.0.0.1:${port}`, "-", "-", size, settings.processes);
    clients = started.clients;
    log(`${label}: all subscribed in ${started.connectSeconds.toFixed(1)} s; sending stages...`);
    const records = await clientRecords(clients, (settings.stageSeconds * 12 + 600) * 1000);
    // It exits by itself once every client has gone.
    await Promise.race([floor.exited, new Promise((r) => setTimeout(r, 10_000))]);
    const times = new Map<number, number>();
    for (const match of floor.stdout().matchAll(/^stage (\d+) at (\d+)$/gm)) {
      times.set(Number(match[1]), Number(match[2]));
    }
    return {
      records,
      times,
      fromStage,
      connectSeconds: started.connectSeconds,
      memory: null,
      serverSubscriptions: null,
    };
  } finally {
    for (const client of clients) await client.stop();
    await floor.stop();
  }
}

async function measure(size: number, server: Server, settings: Settings): Promise<Measurement> {
  const label = `${size.toLocaleString("en-US")} clients, ${SERVER_LABELS[server]}`;
  log(`\n${label}: starting...`);
  const loadBefore = os.loadavg()[0] as number;
  const run =
    server === "floor"
      ? await floorRun(label, size, settings)
      : await hangarRun(label, size, server === "on", settings);

  // Every client: every stage once, in order, from the first one it got to 10, and then the end.
  const problems: string[] = [];
  const delays: number[] = [];
  const lastPerStage = new Map<number, number>();
  const expected = JSON.stringify(Array.from({ length: 11 - run.fromStage }, (_, k) => run.fromStage + k));
  for (const [index, record] of run.records.entries()) {
    if (record.end !== "complete") problems.push(`client ${index}: ended ${record.end}`);
    const stages = record.s.filter((s, i) => i === 0 || s !== record.s[i - 1]);
    if (JSON.stringify(stages) !== expected) problems.push(`client ${index}: stages ${stages.join(",")}`);
    if (record.st.at(-1) !== "SUCCEEDED") problems.push(`client ${index}: last status ${record.st.at(-1)}`);
    for (let stage = run.fromStage + 1; stage <= 10; stage++) {
      const at = run.times.get(stage);
      const i = record.s.indexOf(stage);
      if (at === undefined || i < 0) continue;
      const delay = (record.t[i] as number) - at;
      delays.push(delay);
      lastPerStage.set(stage, Math.max(lastPerStage.get(stage) ?? 0, delay));
    }
  }
  if (problems.length > 0) {
    throw new Error(
      `${label}: ${problems.length} contract violations, e.g.\n${problems.slice(0, 5).join("\n")}`,
    );
  }
  delays.sort((a, b) => a - b);
  const last = [...lastPerStage.values()].sort((a, b) => a - b);
  const result: Measurement = {
    server,
    clients: size,
    processes: Math.min(settings.processes, size),
    delayMs: { p50: percentile(delays, 50), p99: percentile(delays, 99), max: delays.at(-1) ?? Number.NaN },
    lastClientMs: {
      median: percentile(last, 50),
      max: last.at(-1) ?? Number.NaN,
      perStage: Object.fromEntries([...lastPerStage.entries()].map(([k, v]) => [k, Math.round(v)])),
    },
    stagesMeasured: lastPerStage.size,
    memory: run.memory,
    connectSeconds: run.connectSeconds,
    load: [loadBefore, os.loadavg()[0] as number],
    serverSubscriptions: run.serverSubscriptions,
  };
  log(
    `${label}: p50 ${result.delayMs.p50.toFixed(1)} ms, p99 ${result.delayMs.p99.toFixed(1)} ms, ` +
      `last client ${result.lastClientMs.median.toFixed(0)} ms median over ${result.stagesMeasured} stage changes` +
      (result.memory ? `; ${result.memory.rssKBPerSubscriber.toFixed(1)} KB RSS per idle subscriber` : ""),
  );
  return result;
}

/** Memory per subscriber: the larger of the RSS and heap growth (RSS reuses freed pages at small sizes). */
const memoryKB = (m: NonNullable<Measurement["memory"]>) =>
  Math.max(m.rssKBPerSubscriber, m.heapKBPerSubscriber);

function table(results: Measurement[]): string {
  const fmt = (v: number | undefined, digits = 1) =>
    v !== undefined && Number.isFinite(v) ? v.toFixed(digits) : "-";
  const lines = [
    "Subscription fan-out: promotionProgress over graphql-ws, one promotion. Delay from a canary stage change",
    "(its event's `at`, written in the transaction that makes it) until each client has the message, over",
    "every client and stage change; the time until the last client has it, per stage change; the Hangar",
    "process's memory per idle subscriber (after a forced GC: before the first client vs. all subscribed).",
    "The floor is a bare `ws` server sending the same kind of message, serialized once, to as many clients.",
    `Load: the one-minute load average at the start and end of each measurement (${os.cpus().length} CPUs).`,
    "",
    `${"server".padEnd(22)}${"clients".padStart(8)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}` +
      `${"last client ms median/max".padStart(28)}${"KB/sub RSS".padStart(12)}${"KB/sub heap".padStart(13)}` +
      `${"subscribe s".padStart(13)}${"load".padStart(12)}`,
  ];
  for (const r of results) {
    lines.push(
      `${SERVER_LABELS[r.server].padEnd(22)}${r.clients.toLocaleString("en-US").padStart(8)}` +
        `${fmt(r.delayMs.p50).padStart(9)}${fmt(r.delayMs.p99).padStart(9)}` +
        `${`${fmt(r.lastClientMs.median, 0)} / ${fmt(r.lastClientMs.max, 0)}`.padStart(28)}` +
        `${fmt(r.memory?.rssKBPerSubscriber).padStart(12)}${fmt(r.memory?.heapKBPerSubscriber).padStart(13)}` +
        `${fmt(r.connectSeconds).padStart(13)}${`${fmt(r.load[0])}-${fmt(r.load[1])}`.padStart(12)}`,
    );
  }
  const goal = results.find((r) => r.server === "on" && r.clients === GOAL_SIZE);
  lines.push("");
  if (goal?.memory) {
    const memory = memoryKB(goal.memory);
    lines.push(
      `goal: p99 under ${P99_GOAL_MS} ms at ${GOAL_SIZE.toLocaleString("en-US")} subscribers: ` +
        `${goal.delayMs.p99 < P99_GOAL_MS ? "met" : "NOT met"} (${fmt(goal.delayMs.p99)} ms)`,
      `goal: under ${MEMORY_GOAL_KB} KB per idle subscriber: ` +
        `${memory < MEMORY_GOAL_KB ? "met" : "NOT met"} (${fmt(memory)} KB, the larger of RSS and heap)`,
    );
  } else lines.push(`(the goals are for ${GOAL_SIZE.toLocaleString("en-US")} subscribers with sharing on)`);
  for (const other of results.filter((r) => r.server !== "on")) {
    const on = results.find((r) => r.server === "on" && r.clients === other.clients);
    if (!on) continue;
    const ratio = (a: number, b: number) => `${fmt(a / b, 2)}x`;
    lines.push(
      `${SERVER_LABELS[other.server]} / sharing on at ${other.clients.toLocaleString("en-US")}: ` +
        `p99 ${ratio(other.delayMs.p99, on.delayMs.p99)}, last client ${ratio(other.lastClientMs.median, on.lastClientMs.median)}` +
        (other.memory && on.memory
          ? `, memory per subscriber ${ratio(memoryKB(other.memory), memoryKB(on.memory))}`
          : ""),
    );
  }
  return lines.join("\n");
}

async function main() {
  const { values } = parseArgs({
    options: {
      sizes: { type: "string" },
      "baseline-sizes": { type: "string" },
      "floor-sizes": { type: "string" },
      processes: { type: "string" },
      "stage-seconds": { type: "string" },
      profile: { type: "string" },
      json: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const shared = sizes(values.sizes, [1_000, 10_000]);
  const baseline = sizes(values["baseline-sizes"], [1_000]);
  const floor = sizes(values["floor-sizes"], [10_000]);
  const settings: Settings = {
    processes: numberOption(values.processes, "BENCH_FANOUT_PROCESSES", 2, true, USAGE),
    stageSeconds: numberOption(values["stage-seconds"], "BENCH_FANOUT_STAGE_SECONDS", 3, false, USAGE),
    profileDir: values.profile,
  };
  const largest = Math.max(...shared, ...baseline, ...floor);
  const limit = fileLimit();
  if (limit < largest + 1_000) {
    process.stderr.write(
      `ulimit -n is ${limit}: the server needs a file descriptor per client (${largest} + its own); raise it (ulimit -n ${largest + 2_000}) and run again\n`,
    );
    process.exit(2);
  }
  cleanUpOnSignals();
  const results: Measurement[] = [];
  try {
    for (const size of shared) results.push(await measure(size, "on", settings));
    // The floor right after Hangar: the machine's load changes less between the two.
    for (const size of floor) results.push(await measure(size, "floor", settings));
    for (const size of baseline) results.push(await measure(size, "off", settings));
  } finally {
    await cleanup();
  }
  process.stdout.write(values.json ? `${JSON.stringify(results, null, 2)}\n` : `\n${table(results)}\n`);
}

main().catch(async (error: unknown) => {
  process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  await cleanup();
  process.exit(1);
});
