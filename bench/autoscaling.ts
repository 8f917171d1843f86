/**
 * Autoscaling benchmark (issue: autoscaling, scale to zero):
 *  (a) wake-up overhead: time from a request to a scaled-to-zero deployment until its answer, minus the
 *      model's own process start + load() time measured on its own (goal: under 50 ms);
 *  (b) scale-up reaction: time from a step in concurrent load until the added replicas serve, next to
 *      the time one replica takes to start.
 * Run: npm run bench:autoscaling [-- --rounds N] [-- --json]
 */
import {
  type BenchHangar,
  gql,
  modelFolder,
  pushFolder,
  startHangar,
  waitForActive,
} from "./support/hangar.ts";
import { median } from "./support/median.ts";
import { cleanUpOnSignals, cleanup } from "./support/processes.ts";
import { startRunner } from "./support/runner.ts";

const LOAD_MS = 100;
/** A model with a known load() cost, answering with its PID after `sleepMs`. */
const MODEL = {
  "model.mjs": `export default class M {
  async load() { await new Promise((r) => setTimeout(r, ${LOAD_MS})); }
  async predict(input) {
    if (input && input.sleepMs) await new Promise((r) => setTimeout(r, input.sleepMs));
    return { pid: process.pid };
  }
}`,
};

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1]) || 7;
const asJson = args.includes("--json");
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
  }).then(async (r) => ({ status: r.status, body: (await r.json()) as { pid: number } }));
}

async function main() {
  cleanUpOnSignals();
  const dir = await modelFolder(MODEL);
  log(`model: load() takes ${LOAD_MS} ms; ${rounds} rounds each\n`);

  const alone: number[] = [];
  for (let i = 0; i < rounds; i++) alone.push(await coldStartAlone(dir));
  log(`(a) the model alone, spawn -> first answer:      median ${median(alone).toFixed(1)} ms`);

  const hangar = await startHangar();
  const { deploymentId, modelId } = await pushFolder(hangar, "wake-bench", dir);
  await waitForActive(hangar, deploymentId);
  const path = `/models/${modelId}/deployments/${deploymentId}/predict`;
  await settings(hangar, deploymentId, { scaleDownDelay: 0 });
  const wakes: number[] = [];
  for (let i = 0; i < rounds; i++) {
    await waitStatus(hangar, deploymentId, "SCALED_TO_ZERO");
    // Measure a deployment that is asleep, not one still putting its last replica away: wait for the
    // replica to be gone, then give Hangar a moment of quiet, as an idle deployment has.
    await waitIdle(hangar, deploymentId);
    const started = performance.now();
    const answer = await predict(hangar, path, {});
    if (answer.status !== 200) throw new Error(`wake answered ${answer.status}`);
    wakes.push(performance.now() - started);
  }
  const overhead = median(wakes) - median(alone);
  log(`(a) through Hangar, request -> answer from zero: median ${median(wakes).toFixed(1)} ms`);
  log(
    `(a) wake-up overhead:                            ${overhead.toFixed(1)} ms (goal < 50 ms: ${overhead < 50 ? "met" : "NOT met"})\n`,
  );

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
    const pids = new Set<number>();
    let stop = false;
    const started = performance.now();
    let reachedAt = 0;
    const clients = Array.from({ length: 4 }, async () => {
      while (!stop) {
        const answer = await predict(hangar, path, { sleepMs: 300 });
        pids.add(answer.body.pid);
        if (pids.size === 4 && !reachedAt) {
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
      `${JSON.stringify({ loadMs: LOAD_MS, aloneMs: alone, wakeMs: wakes, overheadMs: overhead, scaleUpMs: reactions })}\n`,
    );
  }
}

main()
  .catch((error: unknown) => {
    process.stderr.write(`${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
