/**
 * Metrics benchmark (issue 14): what the gateway's Prometheus counting (GET /metrics) costs its
 * throughput. Goal: with metrics on, saturated throughput within 3% of the same gateway with them off.
 *
 *   npm run bench:metrics -- [--duration S] [--warmup S] [--connections N] [--rounds N] [--json]
 *
 * Two Hangar servers of this checkout, started side by side and both up for the whole run: one as
 * shipped (HANGAR_METRICS on), one with HANGAR_METRICS=0 (no counting, no prom-client registry, no
 * default process metrics). Each gets the echo model (bench/support/echo.ts) pinned to one replica of
 * the same kind (their serverInfo.sandbox must agree). Two servers rather than one restarted per round:
 * each keeps its warmed-up JIT and its replica, and the one not under load idles during the other's
 * run, so an idle Hangar's background work falls on both alike. Every round measures both, saturated,
 * with the load generator of bench/support/load.ts in its own process; the order alternates from round
 * to round (on, off; off, on; ...) so that a machine growing busier or quieter during the run does not
 * favour either. Reported: each round's figures, the medians, the ratio on/off of the medians (the
 * goal's figure) and round by round, Hangar's CPU per request, which moves less than throughput
 * on a shared machine, and, for scale, the counting's own CPU per answer timed in this process.
 *
 * Before the load it checks that both answer the echo and that /metrics answers 200 on one and 404 on
 * the other; after it, that the "on" server counted at least every request it answered in the
 * measured windows. Settings also come from the environment: BENCH_DURATION, BENCH_WARMUP,
 * BENCH_CONNECTIONS, BENCH_ROUNDS. Every process it started is stopped at the end, on failure and on
 * Ctrl-C.
 */
import os from "node:os";
import { PrometheusMetrics } from "../src/metrics/prometheus.ts";
import { checkEcho, ECHO_MODEL, REQUEST_BODY } from "./support/echo.ts";
import {
  type BenchHangar,
  gql,
  modelFolder,
  pinOneReplica,
  pushFolder,
  replicaOf,
  startHangar,
  waitForActive,
} from "./support/hangar.ts";
import { combine, loadBeforeStart, type Measurement, measure, otherCpuText } from "./support/measure.ts";
import { median } from "./support/median.ts";
import { type LoadBenchSettings, loadBenchSettings } from "./support/options.ts";
import { cleanUpOnSignals, cleanup } from "./support/processes.ts";

/** On/off throughput at least this: "within 3%". */
const THROUGHPUT_GOAL = 0.97;

const SIDES = ["on", "off"] as const;
type Side = (typeof SIDES)[number];
const LABELS: Record<Side, string> = { on: "metrics on", off: "metrics off (HANGAR_METRICS=0)" };
const LABEL_WIDTH = 44;

type Watched = "hangar" | "replica";

interface Server {
  side: Side;
  hangar: BenchHangar;
  deploymentId: string;
  path: string;
  replicaPid: number;
  sandbox: string;
}

type Settings = LoadBenchSettings;

function readSettings(): Settings {
  return loadBenchSettings("metrics", {
    fallback: 5,
    meaning: "runs of each server, interleaved, order alternating; medians reported",
  });
}

const progress = (line: string) => process.stderr.write(`${line}\n`);
const fmt = (value: number | null | undefined, digits = 2) =>
  value === null || value === undefined || Number.isNaN(value) ? "-" : value.toFixed(digits);
const int = (value: number) => Math.round(value).toLocaleString("en-US");

/**
 * The counting's own CPU, in this process: CPU nanoseconds per PrometheusMetrics.answered() over a
 * hot loop, best of 5. A floor, not the cost inside a busy gateway (no cache misses there are counted),
 * but one the machine's other load barely moves: it says how large a cost the rounds could find.
 */
function countingNsPerAnswer(): number {
  const metrics = new PrometheusMetrics();
  const deployments = ["dep_a", "dep_b", "dep_c", "dep_d"];
  const statuses = [200, 200, 200, 500];
  const calls = 1_000_000;
  const pass = (n: number) => {
    for (let i = 0; i < n; i++) {
      metrics.answered(
        "mdl_bench",
        deployments[i & 3] as string,
        i & 4 ? "production" : "",
        statuses[i & 3] as number,
        i % 50,
      );
    }
  };
  pass(100_000);
  let best = Number.POSITIVE_INFINITY;
  for (let repeat = 0; repeat < 5; repeat++) {
    // CPU time, not wall time: on a shared machine this process is also descheduled mid-loop.
    const started = process.cpuUsage();
    pass(calls);
    const spent = process.cpuUsage(started);
    best = Math.min(best, ((spent.user + spent.system) * 1000) / calls);
  }
  return best;
}

async function setUp(side: Side): Promise<Server> {
  const hangar = await startHangar({ env: { HANGAR_METRICS: side === "on" ? "1" : "0" } });
  const { deploymentId, modelId } = await pushFolder(
    hangar,
    "bench-echo",
    await modelFolder({ "model.mjs": ECHO_MODEL }),
  );
  await waitForActive(hangar, deploymentId);
  await pinOneReplica(hangar, deploymentId);
  const replica = await replicaOf(hangar, deploymentId);
  const sandbox: string = (await gql(hangar, "{ serverInfo { sandbox } }")).serverInfo.sandbox;
  return {
    side,
    hangar,
    deploymentId,
    path: `/models/${encodeURIComponent(modelId)}/deployments/${encodeURIComponent(deploymentId)}/predict`,
    replicaPid: replica.pid,
    sandbox,
  };
}

const headersOf = (server: Server) => ({
  "content-type": "application/json",
  authorization: `Bearer ${server.hangar.key}`,
});

function scrape(server: Server): Promise<Response> {
  return fetch(`${server.hangar.url}/metrics`, {
    headers: { authorization: `Bearer ${server.hangar.key}` },
    signal: AbortSignal.timeout(30_000),
  });
}

/** The 200 answers /metrics of `server` counted for its deployment (hangar_gateway_requests_total). */
async function counted200(server: Server): Promise<number> {
  const response = await scrape(server);
  if (response.status !== 200) throw new Error(`/metrics of the ${server.side} server: ${response.status}`);
  let total = 0;
  for (const line of (await response.text()).split("\n")) {
    const match = /^hangar_gateway_requests_total\{([^}]*)\} (\S+)$/.exec(line);
    if (match?.[1]?.includes(`deployment="${server.deploymentId}"`) && match[1].includes('code="200"')) {
      total += Number(match[2]);
    }
  }
  return total;
}

/** Both answer the echo; /metrics is there on one and 404 on the other: the switch is what differs. */
async function checkServers(servers: Record<Side, Server>): Promise<void> {
  if (servers.on.sandbox !== servers.off.sandbox) {
    throw new Error(
      `the servers' replicas differ: ${servers.on.sandbox} with metrics, ${servers.off.sandbox} without`,
    );
  }
  for (const side of SIDES) {
    const server = servers[side];
    const answer = await checkEcho(LABELS[side], `${server.hangar.url}${server.path}`, headersOf(server));
    if (answer.get("x-hangar-deployment-id") !== server.deploymentId) {
      throw new Error(`the ${side} server's answer does not name its deployment`);
    }
  }
  const on = await scrape(servers.on);
  await on.arrayBuffer();
  const off = await scrape(servers.off);
  await off.arrayBuffer();
  if (on.status !== 200 || off.status !== 404) {
    throw new Error(`/metrics answered ${on.status} with metrics on and ${off.status} with them off`);
  }
}

function run(settings: Settings, server: Server): Promise<Measurement<Watched>> {
  return measure(
    {
      host: "127.0.0.1",
      port: server.hangar.port,
      path: server.path,
      headers: headersOf(server),
      body: REQUEST_BODY,
      connections: settings.connections,
      rate: null,
      warmupMs: settings.warmupS * 1000,
      durationMs: settings.durationS * 1000,
      timeoutMs: 10_000,
    },
    {
      hangar: { pid: server.hangar.process.child.pid ?? null },
      replica: { pid: server.replicaPid, tree: true },
    },
  );
}

async function main(): Promise<void> {
  const settings = readSettings();
  cleanUpOnSignals();
  const loadBefore = loadBeforeStart();
  const countingNs = countingNsPerAnswer();
  progress("starting Hangar with metrics on, pushing the echo model...");
  const on = await setUp("on");
  progress("starting Hangar with HANGAR_METRICS=0, pushing the echo model...");
  const off = await setUp("off");
  const servers: Record<Side, Server> = { on, off };
  await checkServers(servers);
  progress(`both ready, replicas ${on.sandbox} (pids ${on.replicaPid} and ${off.replicaPid})`);

  const rounds: Record<Side, Measurement<Watched>[]> = { on: [], off: [] };
  const orders: Side[][] = [];
  for (let round = 1; round <= settings.rounds; round++) {
    const order: Side[] = round % 2 === 1 ? ["on", "off"] : ["off", "on"];
    orders.push(order);
    for (const side of order) {
      progress(
        `round ${round}/${settings.rounds}: ${LABELS[side]}, saturated (${settings.connections} conn.)...`,
      );
      const m = await run(settings, servers[side]);
      if (m.errors + m.non2xx > 0) {
        throw new Error(`${LABELS[side]}: ${m.errors} errors and ${m.non2xx} non-2xx answers under load`);
      }
      progress(`  ${int(m.rps)} req/s, p50 ${fmt(m.latencyMs.p50)} ms, p99 ${fmt(m.latencyMs.p99)} ms`);
      rounds[side].push(m);
    }
  }
  // The "on" server really counted: at least every answer of the measured windows (warm-ups add more).
  const measured = rounds.on.reduce((sum, m) => sum + m.requests, 0);
  const counted = await counted200(on);
  if (counted < measured) {
    throw new Error(`/metrics counted ${counted} answers, fewer than the ${measured} measured`);
  }
  const loadAfter = os.loadavg()[0] ?? 0;

  const figures = { on: combine(rounds.on), off: combine(rounds.off) };
  const ratio = figures.on.rps / figures.off.rps;
  const perRound = rounds.on.map((m, i) => m.rps / (rounds.off[i]?.rps ?? Number.NaN));
  const cpuOn = figures.on.cpuUsPerRequest.hangar;
  const cpuOff = figures.off.cpuUsPerRequest.hangar;
  const cpuRatio = cpuOn !== null && cpuOff ? cpuOn / cpuOff : null;
  const met = ratio >= THROUGHPUT_GOAL;
  // The counting's floor as a share of what a request costs Hangar without it.
  const countingShare = cpuOff ? countingNs / 1000 / cpuOff : null;

  if (settings.json) {
    const json = {
      node: process.version,
      cpus: os.cpus().length,
      loadAverageBefore: loadBefore,
      loadAverageAfter: loadAfter,
      replicas: on.sandbox,
      settings: { ...settings, json: undefined },
      orders,
      figures,
      ratios: {
        throughputOnOverOff: ratio,
        perRound,
        medianOfRounds: median(perRound),
        hangarCpuOnOverOff: cpuRatio,
      },
      goal: { goal: `on/off >= ${THROUGHPUT_GOAL}`, met },
      countedByMetrics: counted,
      counting: { nsPerAnswer: countingNs, shareOfHangarCpuOff: countingShare },
      rounds,
    };
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }

  const cpus = os.cpus();
  const row = (label: string, m: Measurement<Watched>) => {
    const cpu = m.cpuUsPerRequest;
    return (
      `${label.padEnd(LABEL_WIDTH)}${int(m.rps).padStart(9)}${fmt(m.latencyMs.p50).padStart(9)}` +
      `${fmt(m.latencyMs.p99).padStart(9)}${otherCpuText(m).padStart(7)}   ` +
      `${fmt(cpu.hangar, 0)}, ${fmt(cpu.replica, 0)}, ${fmt(cpu.generator, 0)}`
    );
  };
  const header =
    `${"saturated".padEnd(LABEL_WIDTH)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}` +
    `${"other".padStart(7)}   CPU µs/req: Hangar, replica, generator`;
  const out = [
    `Hangar metrics benchmark: node ${process.version}, ${cpus.length} CPU(s) (${cpus[0]?.model.trim() ?? "?"})`,
    `${settings.durationS} s measured after ${settings.warmupS} s warm-up per run, ${settings.connections} connections, ` +
      `${settings.rounds} round(s), order alternating; replicas ${on.sandbox}; ` +
      `load average ${loadBefore.toFixed(2)} before the start, ${loadAfter.toFixed(2)} at the end`,
    "",
    header,
  ];
  orders.forEach((order, i) => {
    for (const side of order) {
      const m = (side === "on" ? rounds.on : rounds.off)[i];
      if (m) out.push(row(`  round ${i + 1}: ${LABELS[side]}`, m));
    }
  });
  out.push(
    "",
    `median of ${settings.rounds}`,
    ...SIDES.map((side) => row(`  ${LABELS[side]}`, figures[side])),
    "",
    `on/off saturated throughput: ${fmt(ratio, 3)} (rounds: ${perRound.map((r) => fmt(r, 3)).join(", ")}; ` +
      `their median ${fmt(median(perRound), 3)})`,
    `on/off Hangar CPU per request: ${fmt(cpuRatio, 3)}   (steadier than throughput on a busy machine)`,
    `goal: within 3% (on/off >= ${THROUGHPUT_GOAL}): ${met ? "met" : "NOT met"}`,
    `counting alone, in-process hot loop (best of 5): ${fmt(countingNs, 0)} ns per answer, ` +
      `${fmt(countingShare === null ? null : countingShare * 100, 3)}% of Hangar's CPU per request with metrics off (a floor)`,
    `/metrics of the "on" server counted ${int(counted)} answers (${int(measured)} in the measured windows, the rest warm-up)`,
    "other: the share of the machine's CPU that processes other than those measured used during a run",
  );
  process.stdout.write(`${out.join("\n")}\n`);
}

main().then(
  () => cleanup().then(() => process.exit()),
  async (error: unknown) => {
    process.stderr.write(`benchmark failed: ${error instanceof Error ? error.message : String(error)}\n`);
    await cleanup();
    process.exitCode = 1;
    process.exit();
  },
);
