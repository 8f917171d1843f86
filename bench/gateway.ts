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
 * own process. Goals (the issue's): (c) reaches at least 95% of (b)'s
 * saturated throughput, and at 1,000 requests/s adds under 1 ms at p50 over (a).
 *
 * Settings also come from the environment: BENCH_DURATION, BENCH_WARMUP,
 * BENCH_CONNECTIONS, BENCH_RATE, BENCH_ROUNDS. Every process it started is
 * stopped at the end, on failure and on Ctrl-C.
 */

import os from "node:os";
import path from "node:path";
import { Agent } from "undici";
import { replicaConnector } from "../src/runtime/replica-channel.ts";
import { checkEcho, ECHO_MODEL, REQUEST_BODY } from "./support/echo.ts";
import {
  type BenchHangar,
  modelFolder,
  pinOneReplica,
  pushFolder,
  replicaOf,
  startHangar,
  waitForActive,
} from "./support/hangar.ts";
import type { LoadOptions } from "./support/load.ts";
import {
  combine,
  loadBeforeStart,
  type Measurement as Measured,
  measure as measureLoad,
  otherCpuText,
} from "./support/measure.ts";
import { benchOptions } from "./support/options.ts";
import { cleanUpOnSignals, cleanup } from "./support/processes.ts";
import { startProxy } from "./support/proxies.ts";
import { startRunner } from "./support/runner.ts";

const THROUGHPUT_GOAL = 0.95;
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

/** One measurement: the generator's figures plus CPU time of the processes serving it (support/measure.ts). */
type Measurement = Measured<"hop" | "replica">;

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
  const { numbers, strings, json } = benchOptions(
    USAGE,
    {
      duration: { env: "BENCH_DURATION", fallback: 10, integer: false },
      warmup: { env: "BENCH_WARMUP", fallback: 3, integer: false },
      connections: { env: "BENCH_CONNECTIONS", fallback: 64, integer: true },
      rate: { env: "BENCH_RATE", fallback: 1000, integer: true },
      rounds: { env: "BENCH_ROUNDS", fallback: 1, integer: true },
    },
    ["profile"],
  );
  return {
    durationS: numbers.duration,
    warmupS: numbers.warmup,
    connections: numbers.connections,
    rate: numbers.rate,
    rounds: numbers.rounds,
    json,
    profile: strings.profile ? path.resolve(strings.profile) : null,
  };
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

function measure(
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
  return measureLoad(options, {
    hop: { pid: target.hopPid },
    replica: { pid: target.replicaPid, tree: true },
  });
}

/** One request to each target, checked, before any load. */
async function checkTargets(targets: Record<TargetName, Target>, headers: Record<string, string>) {
  for (const name of TARGETS) {
    const { host, port, path, channel } = targets[name];
    const answer = await checkEcho(
      LABELS[name],
      `http://${host}${port ? `:${port}` : ""}${path}`,
      headers,
      channel ? new Agent({ connect: replicaConnector(channel.socketPath, channel.secret) }) : undefined,
    );
    if (name === "c" && !answer.get("x-hangar-deployment-id")) {
      throw new Error("the gateway's answer has no x-hangar-deployment-id header");
    }
  }
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
    `${"errors".padStart(8)}${"other".padStart(7)}   CPU µs/req: hop, replica, generator`;
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
          `${String(m.errors + m.non2xx).padStart(8)}${otherCpuText(m).padStart(7)}   ` +
          `${fmt(m.cpuUsPerRequest.hop, 0)}, ${fmt(m.cpuUsPerRequest.replica, 0)}, ` +
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
    "other: the share of the machine's CPU that processes other than those measured used during a run (median)",
    `(c) - (a) p50 at ${int(settings.rate)} req/s: ${fmt(computed.p50OverheadCOverAMs, 3)} ms   goal < ${LATENCY_GOAL_MS} ms: ` +
      `${mark(goals.latency.met)}   ((b) - (a): ${fmt(computed.p50OverheadBOverAMs, 3)} ms)`,
  );
  return `${out.join("\n")}\n`;
}

async function main(): Promise<void> {
  const settings = readSettings();
  cleanUpOnSignals();
  const loadBefore = loadBeforeStart();

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
  await lone.answering(REQUEST_BODY);
  progress(
    `replicas ready (Hangar's pid ${replica.pid}, the lone runner's pid ${lone.pid}); starting the minimal proxy...`,
  );
  const proxy = await startProxy("proxy", lone, { nodeArgs: profileFlags });

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
      port: proxy.port,
      path: gatewayPath,
      hopPid: proxy.pid,
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
