/**
 * Gateway benchmark: what Hangar's inference gateway costs over calling the
 * model replica directly, and over the least a Node reverse proxy does.
 *
 *   npm run bench:gateway -- [--duration S] [--warmup S] [--connections N] [--rate R] [--rounds N] [--json]
 *
 * Starts Hangar (a child process on a temporary data dir and a free port),
 * pushes a trivial echo model and measures the same model's runner
 *   (a) directly, over its channel (a runner started here as Hangar starts one, bench/support/runner.ts:
 *       Hangar's own replicas answer only Hangar),
 *   (b) through a minimal reverse proxy to that runner (bench/support/proxy.ts: node:http + the gateway's
 *       pool, no routing),
 *   (c) through /models/{id}/deployments/{id}/predict, to Hangar's replica,
 * each saturated (a fixed number of connections, closed loop) and at a fixed
 * rate (open loop), with the load generator of bench/support/load.ts in its
 * own process. Goals (the issue's): (c) reaches at least 90% of (b)'s
 * saturated throughput, and at 1,000 requests/s adds under 1 ms at p50 over (a).
 *
 * Settings also come from the environment: BENCH_DURATION, BENCH_WARMUP,
 * BENCH_CONNECTIONS, BENCH_RATE, BENCH_ROUNDS. Every process it started is
 * stopped at the end, on failure and on Ctrl-C.
 */

import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { Agent, fetch as undiciFetch } from "undici";
import { replicaConnector } from "../src/runtime/replica-channel.ts";
import {
  type BenchHangar,
  modelFolder,
  pinOneReplica,
  pushFolder,
  replicaOf,
  startHangar,
  waitForActive,
} from "./support/hangar.ts";
import type { LoadOptions, LoadResult, Percentiles } from "./support/load.ts";
import { runLoadProcess } from "./support/load-process.ts";
import { median } from "./support/median.ts";
import { numberOption } from "./support/options.ts";
import { cleanUpOnSignals, cleanup, spawnNode } from "./support/processes.ts";
import { startRunner } from "./support/runner.ts";

const THROUGHPUT_GOAL = 0.9;
const LATENCY_GOAL_MS = 1;

const TARGETS = ["a", "b", "c"] as const;
type TargetName = (typeof TARGETS)[number];
const LABELS: Record<TargetName, string> = {
  a: "(a) replica, directly",
  b: "(b) minimal undici proxy",
  c: "(c) Hangar gateway",
};
const MODES = ["saturated", "fixedRate"] as const;
type Mode = (typeof MODES)[number];

interface Settings {
  durationS: number;
  warmupS: number;
  connections: number;
  rate: number;
  rounds: number;
  json: boolean;
  /** Folder for --cpu-prof profiles of Hangar and of the proxy, or null. */
  profile: string | null;
}

interface Target {
  host: string;
  port: number;
  path: string;
  /** A replica's channel, for (a): the load generator speaks to its socket directly. */
  channel?: LoadOptions["channel"];
  /** The process doing the hop (none for (a)), and the replica, for CPU accounting. */
  hopPid: number | null;
  replicaPid: number;
}

/** One measurement: the generator's figures plus CPU time of the processes serving it. */
interface Measurement extends LoadResult {
  /** CPU microseconds per answered request, by process, over the measured window. */
  cpuUsPerRequest: { generator: number; hop: number | null; replica: number | null };
}

type Figures = Record<Mode, Record<TargetName, Measurement>>;

const USAGE = `usage: npm run bench:gateway -- [options]
  --duration S      measured seconds per run (default 10, env BENCH_DURATION)
  --warmup S        unmeasured load before each run (default 3, env BENCH_WARMUP)
  --connections N   connections of the saturated runs and pool of the fixed-rate ones (default 64)
  --rate R          requests per second of the fixed-rate runs (default 1000, env BENCH_RATE)
  --rounds N        repeat every run N times, interleaved, and report the medians (default 1)
  --json            print the figures as JSON instead of tables
  --profile DIR     write CPU profiles (node --cpu-prof) of Hangar and of the proxy into DIR`;

function readSettings(): Settings {
  const { values } = parseArgs({
    options: {
      duration: { type: "string" },
      warmup: { type: "string" },
      connections: { type: "string" },
      rate: { type: "string" },
      rounds: { type: "string" },
      json: { type: "boolean", default: false },
      profile: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const number = (flag: string | undefined, env: string, fallback: number, integer: boolean) =>
    numberOption(flag, env, fallback, integer, USAGE);
  return {
    durationS: number(values.duration, "BENCH_DURATION", 10, false),
    warmupS: number(values.warmup, "BENCH_WARMUP", 3, false),
    connections: number(values.connections, "BENCH_CONNECTIONS", 64, true),
    rate: number(values.rate, "BENCH_RATE", 1000, true),
    rounds: number(values.rounds, "BENCH_ROUNDS", 1, true),
    json: values.json ?? false,
    profile: values.profile ? path.resolve(values.profile) : null,
  };
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** User + system CPU milliseconds of a process so far (Linux /proc), or null. */
/** utime + stime of one process, from its stat line (fields after the command name, which may hold spaces). */
function statCpuMs(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
}

function cpuMsOf(pid: number | null): number | null {
  if (pid === null) return null;
  try {
    return statCpuMs(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return null;
  }
}

/**
 * CPU of a process and of every live process below it: a fenced replica's PID is bubblewrap's, and the
 * runner that does the work is two generations down.
 */
function treeCpuMsOf(pid: number | null): number | null {
  if (pid === null) return null;
  const stats = new Map<number, { parent: number; cpuMs: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      stats.set(Number(entry), { parent, cpuMs: statCpuMs(stat) });
    } catch {
      // Ended while listed.
    }
  }
  if (!stats.has(pid)) return null;
  let total = 0;
  const queue = [pid];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    total += stats.get(next)?.cpuMs ?? 0;
    for (const [child, { parent }] of stats) if (parent === next) queue.push(child);
  }
  return total;
}

const ECHO_MODEL = `// The benchmark's model: it answers its input, so that the model costs (almost) nothing.
export default class Model {
  predict(input) {
    return input;
  }
}
`;
const REQUEST_BODY = JSON.stringify({ inputs: [0.5, 1.5, 2.5], text: "hangar gateway benchmark" });

async function measure(
  settings: Settings,
  mode: Mode,
  target: Target,
  headers: Record<string, string>,
): Promise<Measurement> {
  const options: LoadOptions = {
    host: target.host,
    port: target.port,
    ...(target.channel ? { channel: target.channel } : {}),
    path: target.path,
    headers,
    body: REQUEST_BODY,
    connections: settings.connections,
    rate: mode === "saturated" ? null : settings.rate,
    warmupMs: settings.warmupS * 1000,
    durationMs: settings.durationS * 1000,
    timeoutMs: 10_000,
  };
  let hopStart: number | null = null;
  let replicaStart: number | null = null;
  let hopEnd: number | null = null;
  let replicaEnd: number | null = null;
  const result = await runLoadProcess(options, {
    start() {
      hopStart = cpuMsOf(target.hopPid);
      replicaStart = treeCpuMsOf(target.replicaPid);
    },
    end() {
      hopEnd = cpuMsOf(target.hopPid);
      replicaEnd = treeCpuMsOf(target.replicaPid);
    },
  });
  const perRequest = (ms: number | null) =>
    ms === null || result.requests === 0 ? null : (ms * 1000) / result.requests;
  const spent = (from: number | null, to: number | null) => (from === null || to === null ? null : to - from);
  return {
    ...result,
    cpuUsPerRequest: {
      generator: perRequest(result.cpuMs) ?? 0,
      hop: perRequest(spent(hopStart, hopEnd)),
      replica: perRequest(spent(replicaStart, replicaEnd)),
    },
  };
}

/** Until `check` holds (30 s at most). */
async function poll(check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("the lone runner did not answer in 30 s");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** One request to each target, checked, before any load. */
async function checkTargets(targets: Record<TargetName, Target>, headers: Record<string, string>) {
  for (const name of TARGETS) {
    const { host, port, path, channel } = targets[name];
    const response = await undiciFetch(`http://${host}${port ? `:${port}` : ""}${path}`, {
      method: "POST",
      headers,
      body: REQUEST_BODY,
      ...(channel
        ? { dispatcher: new Agent({ connect: replicaConnector(channel.socketPath, channel.secret) }) }
        : {}),
    });
    const text = await response.text();
    if (response.status !== 200 || JSON.stringify(JSON.parse(text)) !== REQUEST_BODY) {
      throw new Error(`${LABELS[name]} answered ${response.status} ${text}`);
    }
    if (name === "c" && !response.headers.get("x-hangar-deployment-id")) {
      throw new Error("the gateway's answer has no x-hangar-deployment-id header");
    }
  }
}

/** Medians over the rounds, figure by figure (a single round is returned as is). */
function combine(rounds: Measurement[]): Measurement {
  const first = rounds[0] as Measurement;
  if (rounds.length === 1) return first;
  const med = (pick: (m: Measurement) => number | null | undefined) => {
    const values = rounds.map(pick).filter((v): v is number => typeof v === "number");
    return values.length ? median(values) : null;
  };
  const percentiles = (pick: (m: Measurement) => Percentiles | null): Percentiles => {
    const at = (key: keyof Percentiles) => med((m) => pick(m)?.[key]) ?? Number.NaN;
    return {
      p50: at("p50"),
      p90: at("p90"),
      p99: at("p99"),
      p999: at("p999"),
      max: at("max"),
      mean: at("mean"),
    };
  };
  return {
    ...first,
    requests: med((m) => m.requests) ?? 0,
    non2xx: rounds.reduce((sum, m) => sum + m.non2xx, 0),
    errors: rounds.reduce((sum, m) => sum + m.errors, 0),
    queued: rounds.reduce((sum, m) => sum + m.queued, 0),
    rps: med((m) => m.rps) ?? 0,
    cpuMs: med((m) => m.cpuMs) ?? 0,
    latencyMs: percentiles((m) => m.latencyMs),
    lagMs: first.lagMs ? percentiles((m) => m.lagMs) : null,
    cpuUsPerRequest: {
      generator: med((m) => m.cpuUsPerRequest.generator) ?? 0,
      hop: med((m) => m.cpuUsPerRequest.hop),
      replica: med((m) => m.cpuUsPerRequest.replica),
    },
  };
}

function ratios(figures: Figures) {
  const sat = figures.saturated;
  const fixed = figures.fixedRate;
  const throughputCOverB = sat.c.rps / sat.b.rps;
  const throughputCOverA = sat.c.rps / sat.a.rps;
  const p50OverheadCOverAMs = fixed.c.latencyMs.p50 - fixed.a.latencyMs.p50;
  return {
    throughputCOverB,
    throughputCOverA,
    throughputBOverA: sat.b.rps / sat.a.rps,
    p50OverheadCOverAMs,
    p50OverheadBOverAMs: fixed.b.latencyMs.p50 - fixed.a.latencyMs.p50,
    p50OverheadCOverBMs: fixed.c.latencyMs.p50 - fixed.b.latencyMs.p50,
    // Steadier than throughput on a busy machine: the hop's own CPU per request, saturated.
    hopCpuCOverB:
      sat.c.cpuUsPerRequest.hop !== null && sat.b.cpuUsPerRequest.hop
        ? sat.c.cpuUsPerRequest.hop / sat.b.cpuUsPerRequest.hop
        : null,
    goals: {
      throughput: {
        goal: `(c)/(b) >= ${THROUGHPUT_GOAL}`,
        value: throughputCOverB,
        met: throughputCOverB >= THROUGHPUT_GOAL,
      },
      latency: {
        goal: `(c) - (a) p50 at the fixed rate < ${LATENCY_GOAL_MS} ms`,
        value: p50OverheadCOverAMs,
        met: p50OverheadCOverAMs < LATENCY_GOAL_MS,
      },
    },
  };
}

const fmt = (value: number | null, digits = 2) =>
  value === null || Number.isNaN(value) ? "-" : value.toFixed(digits);
const int = (value: number) => Math.round(value).toLocaleString("en-US");

function report(
  settings: Settings,
  figures: Figures,
  computed: ReturnType<typeof ratios>,
  loadBefore: number,
): string {
  const out: string[] = [];
  const cpus = os.cpus();
  out.push(
    `Hangar gateway benchmark: node ${process.version}, ${cpus.length} CPU(s) (${cpus[0]?.model.trim() ?? "?"})`,
    `${settings.durationS} s measured after ${settings.warmupS} s warm-up per run` +
      (settings.rounds > 1 ? `, median of ${settings.rounds} rounds` : "") +
      `; load average before the start ${loadBefore.toFixed(2)}`,
    "",
  );
  const header = (title: string) =>
    `${title.padEnd(30)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p90 ms".padStart(9)}${"p99 ms".padStart(9)}` +
    `${"errors".padStart(8)}   CPU µs/req: hop, replica, generator`;
  for (const mode of MODES) {
    out.push(
      header(
        mode === "saturated"
          ? `saturated, ${settings.connections} connections`
          : `fixed rate, ${int(settings.rate)} req/s`,
      ),
    );
    for (const name of TARGETS) {
      const m = figures[mode][name];
      out.push(
        `  ${LABELS[name].padEnd(28)}${int(m.rps).padStart(9)}${fmt(m.latencyMs.p50).padStart(9)}` +
          `${fmt(m.latencyMs.p90).padStart(9)}${fmt(m.latencyMs.p99).padStart(9)}` +
          `${String(m.errors + m.non2xx).padStart(8)}   ${fmt(m.cpuUsPerRequest.hop, 0)}, ${fmt(m.cpuUsPerRequest.replica, 0)}, ` +
          `${fmt(m.cpuUsPerRequest.generator, 0)}`,
      );
    }
    if (mode === "fixedRate") {
      const lag = Math.max(...TARGETS.map((n) => figures.fixedRate[n].lagMs?.p99 ?? 0));
      const queued = TARGETS.reduce((sum, n) => sum + figures.fixedRate[n].queued, 0);
      out.push(
        `  (generator: timer lag p99 ${fmt(lag)} ms, not in the latencies; ${queued} requests waited for a connection)`,
      );
    }
    out.push("");
  }
  const mark = (met: boolean) => (met ? "met" : "NOT met");
  const { goals } = computed;
  out.push(
    `(c)/(b) saturated throughput: ${fmt(computed.throughputCOverB)}   goal >= ${THROUGHPUT_GOAL}: ${mark(goals.throughput.met)}`,
    `(c)/(a) saturated throughput: ${fmt(computed.throughputCOverA)}   ((b)/(a): ${fmt(computed.throughputBOverA)})`,
    `(c)/(b) hop CPU per request, saturated: ${fmt(computed.hopCpuCOverB)}   (steadier than throughput on a busy machine)`,
    `(c) - (a) p50 at ${int(settings.rate)} req/s: ${fmt(computed.p50OverheadCOverAMs, 3)} ms   goal < ${LATENCY_GOAL_MS} ms: ` +
      `${mark(goals.latency.met)}   ((b) - (a): ${fmt(computed.p50OverheadBOverAMs, 3)} ms)`,
  );
  return `${out.join("\n")}\n`;
}

async function main(): Promise<void> {
  const settings = readSettings();
  cleanUpOnSignals();
  const loadBefore = os.loadavg()[0] ?? 0;
  if (loadBefore > 0.5) {
    progress(
      `note: load average ${loadBefore.toFixed(2)} before the start: other work on this machine makes the figures noisy`,
    );
  }

  progress("starting Hangar...");
  const profileFlags = settings.profile ? ["--cpu-prof", `--cpu-prof-dir=${settings.profile}`] : [];
  const hangar: BenchHangar = await startHangar({ nodeArgs: profileFlags });
  const dir = await modelFolder({ "model.mjs": ECHO_MODEL });
  progress("pushing the echo model...");
  const { deploymentId, modelId } = await pushFolder(hangar, "bench-echo", dir);
  await waitForActive(hangar, deploymentId);
  await pinOneReplica(hangar, deploymentId);
  const replica = await replicaOf(hangar, deploymentId);
  // Hangar's replicas listen only on a channel whose secret Hangar keeps: (a) and (b) call a runner of
  // the same model started here the same way, and (c) calls Hangar's own.
  const lone = await startRunner(dir);
  await poll(async () => (await lone.post("/predict", REQUEST_BODY).catch(() => 0)) === 200);
  progress(
    `replicas ready (Hangar's pid ${replica.pid}, the lone runner's pid ${lone.pid}); starting the minimal proxy...`,
  );
  const proxy = spawnNode("proxy", [
    ...profileFlags,
    "--import",
    "tsx",
    "bench/support/proxy.ts",
    lone.socketPath,
    lone.secret,
    "/predict",
  ]);
  const proxyPort = Number((await proxy.waitForLine(/^listening (\d+)$/m, 30_000))[1]);

  const gatewayPath = `/models/${encodeURIComponent(modelId)}/deployments/${encodeURIComponent(deploymentId)}/predict`;
  const targets: Record<TargetName, Target> = {
    a: {
      host: "replica",
      port: 0,
      path: "/predict",
      channel: { socketPath: lone.socketPath, secret: lone.secret },
      hopPid: null,
      replicaPid: lone.pid,
    },
    b: {
      host: "127.0.0.1",
      port: proxyPort,
      path: gatewayPath,
      hopPid: proxy.child.pid ?? null,
      replicaPid: lone.pid,
    },
    c: {
      host: "127.0.0.1",
      port: hangar.port,
      path: gatewayPath,
      hopPid: hangar.process.child.pid ?? null,
      replicaPid: replica.pid,
    },
  };
  // The same request everywhere (the key is ignored by (a) and (b)).
  const headers = { "content-type": "application/json", authorization: `Bearer ${hangar.key}` };
  await checkTargets(targets, headers);

  const rounds: Record<Mode, Record<TargetName, Measurement[]>> = {
    saturated: { a: [], b: [], c: [] },
    fixedRate: { a: [], b: [], c: [] },
  };
  for (let round = 1; round <= settings.rounds; round++) {
    for (const mode of MODES) {
      for (const name of TARGETS) {
        const what =
          mode === "saturated" ? `saturated (${settings.connections} conn.)` : `${settings.rate} req/s`;
        const prefix = settings.rounds > 1 ? `round ${round}/${settings.rounds}: ` : "";
        progress(`${prefix}${LABELS[name]}, ${what}...`);
        const m = await measure(settings, mode, targets[name], headers);
        progress(
          `  ${int(m.rps)} req/s, p50 ${fmt(m.latencyMs.p50)} ms, p99 ${fmt(m.latencyMs.p99)} ms` +
            (m.errors + m.non2xx > 0 ? `, ${m.errors} errors, ${m.non2xx} non-2xx` : ""),
        );
        rounds[mode][name].push(m);
      }
    }
  }

  const figures = Object.fromEntries(
    MODES.map((mode) => [
      mode,
      Object.fromEntries(TARGETS.map((name) => [name, combine(rounds[mode][name])])),
    ]),
  ) as Figures;
  const computed = ratios(figures);
  if (settings.json) {
    const cpus = os.cpus();
    const json = {
      node: process.version,
      cpus: cpus.length,
      cpuModel: cpus[0]?.model.trim() ?? null,
      loadAverageBefore: loadBefore,
      settings: { ...settings, json: undefined, profile: undefined },
      figures,
      ratios: computed,
      rounds: settings.rounds > 1 ? rounds : undefined,
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
  } else {
    process.stdout.write(report(settings, figures, computed, loadBefore));
  }
  if (settings.profile)
    progress(`CPU profiles of Hangar and the proxy go to ${settings.profile} as they exit`);
}

main()
  .then(
    () => cleanup(),
    async (error: unknown) => {
      process.stderr.write(`benchmark failed: ${error instanceof Error ? error.message : String(error)}\n`);
      await cleanup();
      process.exitCode = 1;
    },
  )
  .then(() => process.exit());
