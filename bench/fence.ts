/**
 * Fence benchmark (API.md section 9): what fencing a replica costs, measured on
 * two Hangar servers of the same checkout in the same run, one with
 * HANGAR_SANDBOX=off, one with HANGAR_SANDBOX=required (bubblewrap, slirp4netns
 * and, as root, cgroup limits):
 *  (a) start to first answer: a request to a deployment scaled to zero, until
 *      its answer (goal: fenced adds under 20 ms);
 *  (b) saturated throughput through the gateway, one replica (goal: fenced
 *      within 3% of unfenced).
 * The servers are measured in turns, round after round, so that drift of the
 * machine falls on both alike; medians are reported.
 *
 *   npm run bench:fence -- [--rounds N] [--duration S] [--connections N] [--json]
 */
import { parseArgs } from "node:util";
import {
  type BenchHangar,
  gql,
  modelFolder,
  pinOneReplica,
  pushFolder,
  startHangar,
  waitForActive,
} from "./support/hangar.ts";
import type { LoadOptions, LoadResult } from "./support/load.ts";
import { runLoadProcess } from "./support/load-process.ts";
import { median } from "./support/median.ts";
import { numberOption } from "./support/options.ts";
import { cleanUpOnSignals, cleanup } from "./support/processes.ts";

const START_GOAL_MS = 20;
const THROUGHPUT_GOAL = 0.97;

const USAGE = `usage: npm run bench:fence -- [options]
  --rounds N        wake-ups and load runs per server (BENCH_ROUNDS, default 7 and 3)
  --duration S      measured seconds per load run (BENCH_DURATION, default 8)
  --connections N   connections of the load runs (BENCH_CONNECTIONS, default 32)
  --json            print the figures as JSON`;

const MODEL = {
  "model.mjs": `export default class Model {
  predict(input) { return input; }
}
`,
};
const BODY = JSON.stringify({ inputs: [0.5, 1.5, 2.5], text: "hangar fence benchmark" });

const progress = (line: string) => process.stderr.write(`${line}\n`);

interface Server {
  label: string;
  hangar: BenchHangar;
  modelId: string;
  deploymentId: string;
  path: string;
}

async function sandboxOf(hangar: BenchHangar): Promise<string> {
  return (await gql(hangar, "{ serverInfo { sandbox } }")).serverInfo.sandbox;
}

async function setUp(label: string, sandbox: "off" | "required"): Promise<Server> {
  const hangar = await startHangar({ env: { HANGAR_SANDBOX: sandbox } });
  const want = sandbox === "off" ? "OFF" : "FENCED";
  const got = await sandboxOf(hangar);
  if (got !== want) throw new Error(`the ${label} server says its replicas are ${got}, not ${want}`);
  const { deploymentId, modelId } = await pushFolder(hangar, "fence-bench", await modelFolder(MODEL));
  await waitForActive(hangar, deploymentId);
  return {
    label,
    hangar,
    modelId,
    deploymentId,
    path: `/models/${modelId}/deployments/${deploymentId}/predict`,
  };
}

async function autoscaling(server: Server, settings: Record<string, number>): Promise<void> {
  const data = await gql(
    server.hangar,
    `mutation($input: UpdateAutoscalingInput!) { updateAutoscalingSettings(input: $input) { __typename } }`,
    { input: { deploymentId: server.deploymentId, settings } },
  );
  if (data.updateAutoscalingSettings?.__typename !== "Deployment") {
    throw new Error(`updateAutoscalingSettings failed: ${JSON.stringify(data)}`);
  }
}

/** Until the deployment is SCALED_TO_ZERO with no replica left, then a quiet second, as an idle one has. */
async function asleep(server: Server): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { deployment } = await gql(
      server.hangar,
      "query($id: ID!) { deployment(id: $id) { status replicas { id } } }",
      { id: server.deploymentId },
    );
    if (deployment.status === "SCALED_TO_ZERO" && deployment.replicas.length === 0) break;
    if (Date.now() > deadline) throw new Error(`${server.label}: the deployment did not scale to zero`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await new Promise((resolve) => setTimeout(resolve, 1_000));
}

/** (a) One wake: the request to the sleeping deployment until its answer, in ms. */
async function wake(server: Server): Promise<number> {
  await asleep(server);
  const started = performance.now();
  const response = await fetch(`${server.hangar.url}${server.path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.hangar.key}`, "content-type": "application/json" },
    body: BODY,
  });
  await response.arrayBuffer();
  if (response.status !== 200) throw new Error(`${server.label}: the wake-up answered ${response.status}`);
  return performance.now() - started;
}

/** (b) One saturated run through the gateway, by the load generator in a process of its own. */
async function saturate(server: Server, durationS: number, connections: number): Promise<LoadResult> {
  const options: LoadOptions = {
    host: "127.0.0.1",
    port: server.hangar.port,
    path: server.path,
    headers: { authorization: `Bearer ${server.hangar.key}`, "content-type": "application/json" },
    body: BODY,
    connections,
    rate: null,
    warmupMs: 2_000,
    durationMs: durationS * 1000,
    timeoutMs: 10_000,
  };
  const result = await runLoadProcess(options);
  if (result.errors > 0 || result.non2xx > 0) {
    throw new Error(
      `${server.label}: ${result.errors} errors and ${result.non2xx} non-2xx answers under load`,
    );
  }
  return result;
}

async function main() {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string" },
      duration: { type: "string" },
      connections: { type: "string" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const rounds = numberOption(values.rounds, "BENCH_ROUNDS", 7, true, USAGE);
  const durationS = numberOption(values.duration, "BENCH_DURATION", 8, false, USAGE);
  const connections = numberOption(values.connections, "BENCH_CONNECTIONS", 32, true, USAGE);
  cleanUpOnSignals();

  progress("starting two servers: unfenced (HANGAR_SANDBOX=off) and fenced (HANGAR_SANDBOX=required)");
  const servers = [await setUp("unfenced", "off"), await setUp("fenced", "required")];

  // (b) first, while the deployments are up; then (a), with each allowed to sleep at once.
  const loads = new Map(servers.map((server) => [server, [] as LoadResult[]]));
  for (const server of servers) await pinOneReplica(server.hangar, server.deploymentId);
  const loadRounds = Math.min(rounds, 3);
  for (let round = 0; round < loadRounds; round++) {
    for (const server of servers) loads.get(server)?.push(await saturate(server, durationS, connections));
    progress(`(b) load round ${round + 1}/${loadRounds}`);
  }

  const wakes = new Map(servers.map((server) => [server, [] as number[]]));
  for (const server of servers) await autoscaling(server, { minReplica: 0, scaleDownDelay: 0 });
  for (let round = 0; round < rounds; round++) {
    for (const server of servers) wakes.get(server)?.push(await wake(server));
    progress(`(a) wake-up round ${round + 1}/${rounds}`);
  }

  const figures = servers.map((server) => {
    const runs = loads.get(server) ?? [];
    return {
      server: server.label,
      wakeMs: median(wakes.get(server) ?? []),
      rps: median(runs.map((run) => run.rps)),
      p50Ms: median(runs.map((run) => run.latencyMs.p50)),
      p99Ms: median(runs.map((run) => run.latencyMs.p99)),
    };
  });
  const [off, fenced] = figures as [(typeof figures)[0], (typeof figures)[0]];
  const addedMs = fenced.wakeMs - off.wakeMs;
  const ratio = fenced.rps / off.rps;
  const verdict = {
    startAddedMs: addedMs,
    startGoalMet: addedMs < START_GOAL_MS,
    throughputRatio: ratio,
    throughputGoalMet: ratio >= THROUGHPUT_GOAL,
  };
  if (values.json) {
    process.stdout.write(
      `${JSON.stringify({ rounds, durationS, connections, figures, verdict }, null, 2)}\n`,
    );
    return;
  }
  const rows = figures.map(
    (f) =>
      `| ${f.server.padEnd(8)} | ${f.wakeMs.toFixed(1).padStart(8)} | ${f.rps.toFixed(0).padStart(7)} | ${f.p50Ms.toFixed(2).padStart(6)} | ${f.p99Ms.toFixed(2).padStart(6)} |`,
  );
  process.stdout.write(
    [
      `${rounds} wake-ups and ${loadRounds} load runs of ${durationS} s with ${connections} connections per server; medians`,
      "",
      "| replicas | wake, ms | req/s   | p50 ms | p99 ms |",
      "| -------- | -------- | ------- | ------ | ------ |",
      ...rows,
      "",
      `(a) fencing adds ${addedMs.toFixed(1)} ms to start-to-first-answer (goal < ${START_GOAL_MS} ms: ${verdict.startGoalMet ? "met" : "NOT met"})`,
      `(b) fenced throughput is ${(ratio * 100).toFixed(1)}% of unfenced (goal >= ${THROUGHPUT_GOAL * 100}%: ${verdict.throughputGoalMet ? "met" : "NOT met"})`,
      "",
    ].join("\n"),
  );
}

main()
  .catch((error: Error) => {
    process.stderr.write(`${error.stack ?? error.message}\n`);
    process.exitCode = 1;
  })
  .finally(cleanup);
