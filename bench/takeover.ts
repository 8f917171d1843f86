/**
 * Takeover benchmark (issue: several Hangar processes on one PostgreSQL): two members on a throwaway
 * PostgreSQL; a deployment runs on one of them, which is SIGKILLed; measured is the time from the kill
 * until the survivor answers a request for the deployment. Fresh members and database every round;
 * prints each round and the median. API.md section 10 promises 20 s; the goal is 10 s. Three ways, each
 * `--rounds` times, interleaved (controllers/membership.ts):
 *  - same machine: the survivor sees the dead member's process end;
 *  - another machine: the dead member's process name is blanked in its Member row first, so the survivor
 *    goes by its missed heartbeat and its URL refusing connections;
 *  - another machine, unanswered: as the last, and a listener that accepts and never answers takes the
 *    dead member's port at once (a lost machine, a proxy in front): only the expiry (15 s after its last
 *    heartbeat) can tell.
 * Run: npm run bench:takeover [-- --rounds N] [-- --json]
 */
import net from "node:net";
import { hostname } from "node:os";
import pg from "pg";
import { startPostgres } from "../test/support/postgres.ts";
import { modelFolder, pushFolder, startHangar, waitForActive } from "./support/hangar.ts";
import { median } from "./support/median.ts";
import { createDatabase, replicasOf } from "./support/members.ts";
import { cleanUpOnSignals, cleanup } from "./support/processes.ts";

const args = process.argv.slice(2);
const rounds = Number(args[args.indexOf("--rounds") + 1]) || 5;
const asJson = args.includes("--json");
const log = (line: string) => {
  if (!asJson) process.stdout.write(`${line}\n`);
};

const MODEL = { "model.mjs": "export default class M { predict() { return { pid: process.pid }; } }" };

const MODES = ["same machine", "another machine", "another machine, unanswered"] as const;
type Mode = (typeof MODES)[number];

/** Takes `port` with a listener that accepts connections and never answers (retried while it is still bound). */
async function blackHole(host: string, port: number): Promise<net.Server> {
  const deadline = performance.now() + 5_000;
  for (;;) {
    const server = net.createServer(() => {});
    const bound = await new Promise<boolean>((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, host, () => resolve(true));
    });
    if (bound) return server;
    if (performance.now() > deadline) throw new Error(`port ${port} still taken 5 s after the kill`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

async function round(adminUrl: string, n: number, mode: Mode): Promise<number> {
  const env = { DATABASE_URL: await createDatabase(adminUrl, `takeover_${n}`) };
  const a = await startHangar({ env });
  const b = await startHangar({ env });
  let hole: net.Server | undefined;
  try {
    const { deploymentId, modelId } = await pushFolder(a, `takeover-${n}`, await modelFolder(MODEL));
    await waitForActive(a, deploymentId);
    const runner = (await replicasOf(a, deploymentId)).find((r) => r.state === "READY")?.member;
    const [dead, alive] = runner === `${hostname()}:${a.port}` ? [a, b] : [b, a];
    if (mode !== "same machine") {
      const db = new pg.Client({ connectionString: env.DATABASE_URL });
      await db.connect();
      await db.query(`UPDATE "Member" SET process = '' WHERE name = $1`, [`${hostname()}:${dead.port}`]);
      await db.end();
    }
    const killed = performance.now();
    dead.process.child.kill("SIGKILL");
    if (mode === "another machine, unanswered") {
      await new Promise((resolve) => dead.process.child.once("exit", resolve));
      const { hostname: host } = new URL(dead.url);
      hole = await blackHole(host.replace(/^\[(.*)\]$/, "$1"), dead.port);
    }
    for (;;) {
      const response = await fetch(`${alive.url}/models/${modelId}/deployments/${deploymentId}/predict`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${alive.key}` },
        body: "{}",
        signal: AbortSignal.timeout(2_000),
      }).catch(() => null);
      if (response?.status === 200) {
        const answer = (await response.json()) as { pid: number };
        // The dead member's replica died with it: the answer is the survivor's own replica.
        if (answer.pid) return performance.now() - killed;
      } else {
        await response?.body?.cancel();
      }
      if (performance.now() - killed > 60_000) throw new Error("no takeover within 60 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    await Promise.allSettled([a.process.stop(), b.process.stop()]);
    hole?.close();
  }
}

async function main(): Promise<void> {
  cleanUpOnSignals();
  const cluster = await startPostgres();
  try {
    const modes: readonly Mode[] = MODES;
    const times = new Map<Mode, number[]>(modes.map((mode) => [mode, []]));
    for (let n = 1; n <= rounds * modes.length; n++) {
      const mode = modes[(n - 1) % modes.length] as Mode;
      const ms = await round(cluster.url, n, mode);
      times.get(mode)?.push(ms);
      log(`round ${n} (${mode}): serving on the survivor ${(ms / 1000).toFixed(1)} s after the SIGKILL`);
    }
    const result = Object.fromEntries(
      modes.map((mode) => {
        const ms = times.get(mode) ?? [];
        return [mode, { rounds: ms.length, takeoverMsMedian: Math.round(median(ms)), takeoverMs: ms }];
      }),
    );
    if (asJson) process.stdout.write(`${JSON.stringify(result)}\n`);
    else {
      for (const mode of modes) {
        const middle = result[mode]?.takeoverMsMedian ?? 0;
        log(`takeover after SIGKILL, ${mode}: median ${(middle / 1000).toFixed(1)} s of ${rounds}`);
      }
    }
  } finally {
    await cluster.stop();
    await cleanup();
  }
}

await main();
