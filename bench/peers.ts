/**
 * Cross-member benchmark (API.md section 10): what it costs when the member a request reaches does not
 * run the deployment's replica and hands the request to the member that does.
 *
 *   npm run bench:peers -- [--duration S] [--warmup S] [--connections N] [--rounds N] [--json]
 *
 * Two Hangar members on one throwaway PostgreSQL. Member A starts alone, gets the echo model pushed and
 * its deployment pinned to one replica (which so runs on A), then member B starts. Requests go to B's
 * /models/{id}/deployments/{id}/predict; B runs no replica of it (checked with the members and
 * replicas { member } queries before and after the load) and hands each to A at
 * /internal/v1/deployments/{id}/predict, whose replica answers. Compared, saturated and in interleaved
 * rounds, with the floor of that path: two minimal proxies chained (bench/support/proxy.ts: the first
 * forwards over TCP with the pool a member uses to reach another, the second to a runner of the same
 * model over its channel with the gateway's replica pool). Goal: B -> A reaches at least 90% of the
 * chained proxies' throughput.
 *
 * Settings also come from the environment: BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS,
 * BENCH_ROUNDS. Every process it started (PostgreSQL included) is stopped at the end, on failure and
 * on Ctrl-C.
 */
import os from "node:os";
import { startPostgres } from "../test/support/postgres.ts";
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
import { combine, loadBeforeStart, type Measurement, measure, otherCpuText } from "./support/measure.ts";
import { createDatabase, membersOf, replicasOf } from "./support/members.ts";
import { type LoadBenchSettings, loadBenchSettings } from "./support/options.ts";
import { atCleanup, cleanUpOnSignals, cleanup } from "./support/processes.ts";
import { startProxy } from "./support/proxies.ts";
import { startRunner } from "./support/runner.ts";

const THROUGHPUT_GOAL = 0.9;

const TARGETS = ["b", "c"] as const;
type TargetName = (typeof TARGETS)[number];
const LABELS: Record<TargetName, string> = {
  b: "(b) proxy -> proxy -> runner",
  c: "(c) member B -> member A",
};

/** The processes of a target, for CPU accounting: the two hops and the replica. */
type Hops = "first" | "second" | "replica";

interface Target {
  port: number;
  path: string;
  headers: Record<string, string>;
  pids: Record<Hops, number | null>;
}

type Settings = LoadBenchSettings;

function readSettings(): Settings {
  return loadBenchSettings("peers", {
    fallback: 3,
    meaning: "runs of each target, interleaved; medians reported",
  });
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

/**
 * That B runs no replica of the deployment and A runs exactly one, ready: so B's requests can only be
 * served by handing them to A. Throws otherwise.
 */
async function checkPlacement(a: BenchHangar, b: BenchHangar, deploymentId: string): Promise<void> {
  const replicas = await replicasOf(b, deploymentId);
  const members = await membersOf(b);
  const onA = replicas.filter((r) => r.member === "bench-a");
  const elsewhere = replicas.filter((r) => r.member !== "bench-a");
  const memberB = members.find((m) => m.name === "bench-b");
  if (onA.length !== 1 || onA[0]?.state !== "READY" || elsewhere.length > 0 || memberB?.replicaCount !== 0) {
    throw new Error(
      `expected one ready replica, on bench-a, and none on bench-b; replicas ${JSON.stringify(replicas)}, ` +
        `members ${JSON.stringify(members)}`,
    );
  }
  // Both answer the same members list: they are one Hangar.
  const seenByA = (await membersOf(a)).map((m) => m.name).sort();
  if (seenByA.join() !== "bench-a,bench-b") throw new Error(`member A sees members ${seenByA.join(", ")}`);
}

function run(settings: Settings, target: Target): Promise<Measurement<Hops>> {
  return measure(
    {
      host: "127.0.0.1",
      port: target.port,
      path: target.path,
      headers: target.headers,
      body: REQUEST_BODY,
      connections: settings.connections,
      rate: null,
      warmupMs: settings.warmupS * 1000,
      durationMs: settings.durationS * 1000,
      timeoutMs: 10_000,
    },
    {
      first: { pid: target.pids.first },
      second: { pid: target.pids.second },
      replica: { pid: target.pids.replica, tree: true },
    },
  );
}

const fmt = (value: number | null | undefined, digits = 2) =>
  value === null || value === undefined || Number.isNaN(value) ? "-" : value.toFixed(digits);
const int = (value: number) => Math.round(value).toLocaleString("en-US");

/** The two hops' CPU per request together, or null when either is unknown. */
function hopsCpu(m: Measurement<Hops>): number | null {
  const { first, second } = m.cpuUsPerRequest;
  return first === null || second === null ? null : first + second;
}

async function main(): Promise<void> {
  const settings = readSettings();
  cleanUpOnSignals();
  const loadBefore = loadBeforeStart();
  progress("starting PostgreSQL...");
  const cluster = await startPostgres();
  atCleanup(() => cluster.stop());
  try {
    const env = { DATABASE_URL: await createDatabase(cluster.url, "peers_bench") };
    progress("starting member A, pushing the echo model...");
    const a = await startHangar({ env: { ...env, HANGAR_MEMBER_NAME: "bench-a" } });
    const dir = await modelFolder({ "model.mjs": ECHO_MODEL });
    const { deploymentId, modelId } = await pushFolder(a, "bench-echo", dir);
    await waitForActive(a, deploymentId);
    await pinOneReplica(a, deploymentId);
    const replica = await replicaOf(a, deploymentId);
    // Started once A runs the deployment's one replica: B has none, and gets none while it is pinned.
    progress("starting member B...");
    const b = await startHangar({ env: { ...env, HANGAR_MEMBER_NAME: "bench-b" } });
    await checkPlacement(a, b, deploymentId);

    progress("starting the lone runner and the two chained proxies...");
    const lone = await startRunner(dir);
    await lone.answering(REQUEST_BODY);
    const second = await startProxy("proxy to the runner", lone);
    const first = await startProxy("proxy to the proxy", { origin: `http://127.0.0.1:${second.port}` });

    const path = `/models/${encodeURIComponent(modelId)}/deployments/${encodeURIComponent(deploymentId)}/predict`;
    const headers = { "content-type": "application/json", authorization: `Bearer ${b.key}` };
    const targets: Record<TargetName, Target> = {
      b: {
        port: first.port,
        path,
        headers,
        pids: { first: first.pid, second: second.pid, replica: lone.pid },
      },
      c: {
        port: b.port,
        path,
        headers,
        pids: {
          first: b.process.child.pid ?? null,
          second: a.process.child.pid ?? null,
          replica: replica.pid,
        },
      },
    };
    for (const name of TARGETS) {
      const answer = await checkEcho(LABELS[name], `http://127.0.0.1:${targets[name].port}${path}`, headers);
      if (name === "c" && answer.get("x-hangar-deployment-id") !== deploymentId) {
        throw new Error("member B's answer does not name the deployment");
      }
    }

    const rounds: Record<TargetName, Measurement<Hops>[]> = { b: [], c: [] };
    for (let round = 1; round <= settings.rounds; round++) {
      for (const name of TARGETS) {
        progress(
          `round ${round}/${settings.rounds}: ${LABELS[name]}, saturated (${settings.connections} conn.)...`,
        );
        const m = await run(settings, targets[name]);
        progress(
          `  ${int(m.rps)} req/s, p50 ${fmt(m.latencyMs.p50)} ms, p99 ${fmt(m.latencyMs.p99)} ms` +
            (m.errors + m.non2xx > 0 ? `, ${m.errors} errors, ${m.non2xx} non-2xx` : ""),
        );
        rounds[name].push(m);
      }
    }
    // Still so after the load: every request B answered went through A.
    await checkPlacement(a, b, deploymentId);

    const figures = { b: combine(rounds.b), c: combine(rounds.c) };
    const ratio = figures.c.rps / figures.b.rps;
    const perRound = rounds.c.map((m, i) => m.rps / (rounds.b[i]?.rps ?? Number.NaN));
    const cpuB = hopsCpu(figures.b);
    const cpuC = hopsCpu(figures.c);
    const hopCpuRatio = cpuB && cpuC !== null ? cpuC / cpuB : null;
    if (settings.json) {
      const json = {
        node: process.version,
        cpus: os.cpus().length,
        loadAverageBefore: loadBefore,
        settings: { ...settings, json: undefined },
        figures,
        ratios: { throughputCOverB: ratio, perRound, hopCpuCOverB: hopCpuRatio },
        goal: { goal: `(c)/(b) >= ${THROUGHPUT_GOAL}`, met: ratio >= THROUGHPUT_GOAL },
        rounds: settings.rounds > 1 ? rounds : undefined,
      };
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      return;
    }
    const cpus = os.cpus();
    const out = [
      `Hangar cross-member benchmark: node ${process.version}, ${cpus.length} CPU(s) (${cpus[0]?.model.trim() ?? "?"})`,
      `${settings.durationS} s measured after ${settings.warmupS} s warm-up per run, ${settings.connections} connections, ` +
        `median of ${settings.rounds} round(s); load average before the start ${loadBefore.toFixed(2)}`,
      "",
      `${"saturated".padEnd(32)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${"errors".padStart(8)}` +
        `${"other".padStart(7)}   CPU µs/req: 1st hop, 2nd hop, replica, generator`,
      ...TARGETS.map((name) => {
        const m = figures[name];
        const cpu = m.cpuUsPerRequest;
        return (
          `  ${LABELS[name].padEnd(30)}${int(m.rps).padStart(9)}${fmt(m.latencyMs.p50).padStart(9)}` +
          `${fmt(m.latencyMs.p99).padStart(9)}${String(m.errors + m.non2xx).padStart(8)}` +
          `${otherCpuText(m).padStart(7)}   ` +
          `${fmt(cpu.first, 0)}, ${fmt(cpu.second, 0)}, ${fmt(cpu.replica, 0)}, ${fmt(cpu.generator, 0)}`
        );
      }),
      "",
      `(c)/(b) saturated throughput: ${fmt(ratio)} (rounds: ${perRound.map((r) => fmt(r)).join(", ")})   ` +
        `goal >= ${THROUGHPUT_GOAL}: ${ratio >= THROUGHPUT_GOAL ? "met" : "NOT met"}`,
      `(c)/(b) CPU per request of the two hops together: ${fmt(hopCpuRatio)}   (steadier than throughput on a busy machine)`,
      "member B ran no replica of the deployment before and after the load (members, replicas { member })",
      "other: the share of the machine's CPU that processes other than those measured used during a run (median)",
    ];
    process.stdout.write(`${out.join("\n")}\n`);
  } finally {
    await cleanup();
  }
}

main().then(
  () => process.exit(),
  (error: unknown) => {
    process.stderr.write(`benchmark failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
    process.exit();
  },
);
