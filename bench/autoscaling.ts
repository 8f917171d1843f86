/**
 * Autoscaling benchmark (issue: autoscaling, scale to zero):
 *  (a) wake-up overhead: time from a request to a scaled-to-zero deployment until its answer, minus the
 *      model's own process start + load() measured on its own (Hangar's runner started directly,
 *      unfenced), the two measured in turns (baseline, wake, baseline, wake, ...) so that the machine's
 *      drift falls on both alike; medians of each and of the per-round differences (goal: under 30 ms);
 *  (b) scale-up reaction: time from a step in concurrent load until the added replicas serve, next to
 *      the time one replica takes to start.
 * Run: npm run bench:autoscaling [-- --rounds N] [-- --sandbox auto|off|required] [-- --skip-scale-up]
 *      [-- --json]
 */
import { parseArgs } from "node:util";
import {
  type BenchHangar,
  gql,
  modelFolder,
  pushFolder,
  startHangar,
  waitForActive,
} from "./support/hangar.ts";
import { median } from "./support/median.ts";
import { numberOption } from "./support/options.ts";
import { cleanUpOnSignals, cleanup } from "./support/processes.ts";
import { startRunner } from "./support/runner.ts";

const WAKE_GOAL_MS = 30;
const USAGE = `usage: npm run bench:autoscaling -- [options]
  --rounds N        wake-ups (each after a baseline start) and scale-up steps (at most 3) (BENCH_ROUNDS, default 9)
  --sandbox MODE    HANGAR_SANDBOX of the Hangar measured: auto (default), off, required
  --skip-scale-up   measure (a) only
  --json            print the figures as JSON`;

const LOAD_MS = 100;
/** A model with a known load() cost, answering with its replica's ID after `sleepMs`. */
const MODEL = {
  "model.mjs": `export default class M {
  async load() { await new Promise((r) => setTimeout(r, ${LOAD_MS})); }
  async predict(input) {
    if (input && input.sleepMs) await new Promise((r) => setTimeout(r, input.sleepMs));
    return { replica: process.env.HANGAR_REPLICA_ID };
  }
}`,
};

const { values: flags } = parseArgs({
  options: {
    rounds: { type: "string" },
    sandbox: { type: "string" },
    "skip-scale-up": { type: "boolean" },
    json: { type: "boolean" },
  },
});
const rounds = numberOption(flags.rounds, "BENCH_ROUNDS", 9, true, USAGE);
const sandbox = flags.sandbox ?? process.env.HANGAR_SANDBOX ?? "auto";
if (!["auto", "off", "required"].includes(sandbox)) {
  process.stderr.write(`invalid --sandbox '${sandbox}'\n${USAGE}\n`);
  process.exit(2);
}
const asJson = flags.json === true;
const log = (line: string) => {
  if (!asJson) process.stdout.write(`${line}\n`);
};

/** The model on its own: Hangar's runner started directly (bench/support/runner.ts), spawn -> first answer. */
async function coldStartAlone(dir: string): Promise<number> {
  const started = performance.now();
  const runner = await startRunner(dir);
  try {
    for (;;) {
      // Refused until load() is done and the runner serves its socket.
      const status = await runner.post("/predict", "{}").catch(() => 0);
      if (status === 200) return performance.now() - started;
      await new Promise((r) => setTimeout(r, 2));
    }
  } finally {
    await runner.stop();
  }
}

async function status(hangar: BenchHangar, id: string): Promise<string> {
  return (await gql(hangar, `query($id: ID!) { deployment(id: $id) { status } }`, { id })).deployment.status;
}

async function waitStatus(hangar: BenchHangar, id: string, want: string, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while ((await status(hangar, id)) !== want) {
    if (Date.now() > deadline) throw new Error(`deployment ${id} did not reach ${want}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitIdle(hangar: BenchHangar, id: string) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const replicas = (
      await gql(hangar, `query($id: ID!) { deployment(id: $id) { replicas { id } } }`, { id })
    ).deployment.replicas;
    if (replicas.length === 0) break;
    if (Date.now() > deadline) throw new Error("the last replica did not stop");
    await new Promise((r) => setTimeout(r, 20));
  }
  await new Promise((r) => setTimeout(r, 1_000));
}

async function settings(hangar: BenchHangar, id: string, values: Record<string, number>) {
  await gql(
    hangar,
    `mutation($id: ID!, $s: AutoscalingSettingsInput!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: $s }) { __typename } }`,
    { id, s: values },
  );
}

function predict(hangar: BenchHangar, path: string, body: unknown) {
  return fetch(`${hangar.url}${path}`, {
    method: "POST",
    headers: { authorization: `Bearer ${hangar.key}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as { replica: string } }));
}

async function main() {
  cleanUpOnSignals();
  const dir = await modelFolder(MODEL);
  log(`model: load() takes ${LOAD_MS} ms; ${rounds} rounds`);
  const hangar = await startHangar({ env: { HANGAR_SANDBOX: sandbox } });
  const fence = (await gql(hangar, "{ serverInfo { sandbox } }")).serverInfo.sandbox as string;
  log(`Hangar: HANGAR_SANDBOX=${sandbox}, its replicas are ${fence}; the baseline runner is unfenced\n`);
  const { deploymentId, modelId } = await pushFolder(hangar, "wake-bench", dir);
  await waitForActive(hangar, deploymentId);
  const path = `/models/${modelId}/deployments/${deploymentId}/predict`;
  await settings(hangar, deploymentId, { scaleDownDelay: 0 });
  // (a) In turns: the model alone, then a wake through Hangar, round after round, so that whatever else
  // the machine does falls on both alike. Round 0 warms both paths up and is not counted.
  const alone: number[] = [];
  const wakes: number[] = [];
  for (let i = 0; i <= rounds; i++) {
    await waitStatus(hangar, deploymentId, "SCALED_TO_ZERO");
    // Measure a deployment that is asleep, not one still putting its last replica away: wait for the
    // replica to be gone, then give Hangar a moment of quiet, as an idle deployment has.
    await waitIdle(hangar, deploymentId);
    const own = await coldStartAlone(dir);
    await new Promise((r) => setTimeout(r, 300));
    const started = performance.now();
    const answer = await predict(hangar, path, {});
    if (answer.status !== 200) throw new Error(`wake answered ${answer.status}`);
    const wake = performance.now() - started;
    if (i === 0) continue;
    alone.push(own);
    wakes.push(wake);
  }
  const differences = wakes.map((wake, i) => wake - (alone[i] as number));
  const overhead = median(differences);
  const list = (values: number[]) => values.map((v) => v.toFixed(0)).join(" ");
  log(
    `(a) the model alone, spawn -> first answer:      median ${median(alone).toFixed(1)} ms (${list(alone)})`,
  );
  log(
    `(a) through Hangar, request -> answer from zero: median ${median(wakes).toFixed(1)} ms (${list(wakes)})`,
  );
  log(
    `(a) wake-up overhead, median of the differences: ${overhead.toFixed(1)} ms (${list(differences)}); difference of the medians ${(median(wakes) - median(alone)).toFixed(1)} ms`,
  );
  log(`    goal < ${WAKE_GOAL_MS} ms: ${overhead < WAKE_GOAL_MS ? "met" : "NOT met"}\n`);
  if (flags["skip-scale-up"]) {
    if (asJson) {
      process.stdout.write(
        `${JSON.stringify({ loadMs: LOAD_MS, sandbox: fence, aloneMs: alone, wakeMs: wakes, overheadMs: overhead })}\n`,
      );
    }
    return;
  }

  // (b) One replica serving one client; then four clients at once (each request 300 ms): the autoscaler
  // must add three replicas. Measured: step -> the fourth distinct replica has answered.
  await settings(hangar, deploymentId, {
    scaleDownDelay: 600,
    minReplica: 1,
    maxReplica: 4,
    autoscalingWindow: 1,
    concurrencyTarget: 1,
    targetUtilizationPercentage: 100,
  });
  const reactions: number[] = [];
  for (let round = 0; round < Math.min(rounds, 3); round++) {
    await settings(hangar, deploymentId, { maxReplica: 1 });
    await settings(hangar, deploymentId, { maxReplica: 4 });
    // Let the scale-down to one replica happen before the step (maxReplica 1 forces it at once).
    const deadline = Date.now() + 60_000;
    for (;;) {
      const replicas = (
        await gql(hangar, `query($id: ID!) { deployment(id: $id) { activeReplicaCount } }`, {
          id: deploymentId,
        })
      ).deployment.activeReplicaCount;
      if (replicas === 1) break;
      if (Date.now() > deadline) throw new Error("did not settle at one replica");
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 1500)); // a quiet autoscaling window before the step
    // By the replica's ID: a fenced replica's PID is its own namespace's (the same in every one).
    const served = new Set<string>();
    let stop = false;
    const started = performance.now();
    let reachedAt = 0;
    const clients = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const answer = await predict(hangar, path, { sleepMs: 300 });
        served.add(answer.body.replica);
        if (served.size === 4 && !reachedAt) {
          reachedAt = performance.now();
          stop = true;
        }
        if (performance.now() - started > 60_000) stop = true;
      }
    });
    await Promise.all(clients);
    if (!reachedAt) throw new Error("never reached four replicas");
    reactions.push(reachedAt - started);
  }
  log(`(b) load step 1 -> 4 clients until 4 replicas serve: median ${median(reactions).toFixed(0)} ms`);
  log(`(b) one replica's own start (from (a)):               median ${median(alone).toFixed(0)} ms`);
  log(
    `(b) reaction beyond one start:                        ${(median(reactions) - median(alone)).toFixed(0)} ms`,
  );
  log(`    (the autoscaler ticks every 500 ms and averages over autoscalingWindow = 1 s)`);
  if (asJson) {
    process.stdout.write(
      `${JSON.stringify({ loadMs: LOAD_MS, sandbox: fence, aloneMs: alone, wakeMs: wakes, overheadMs: overhead, scaleUpMs: reactions })}\n`,
    );
  }
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
