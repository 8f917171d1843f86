/**
 * Dashboard benchmark: what answering the dashboard query through GraphQL
 * costs over a hand-written Prisma query returning the same data.
 *
 *   npm run bench:dashboard -- [--models N] [--duration S] [--warmup S] [--rounds N] [--concurrency N] [--json]
 *
 * Builds N models (default 100; see bench/support/dashboard.ts for the rows)
 * in a temporary PGlite opened in this process, checks that both answer the
 * same data and counts the SQL statements each sends, then measures requests
 * per second, closed loop, in this process, of
 *   (a)  the query of bench/support/dashboard.ts executed through the schema with
 *        graphql() from the graphql package: parse, validate, execute, per request;
 *   (a') the same through a graphql-yoga fetch handler (JSON request and response,
 *        yoga's parse/validate cache), for reference;
 *   (b)  the hand-written query: one prisma.model.findMany with a nested select
 *        (READY replica counts as a filtered _count), shaped as the GraphQL answer.
 * Measurements are interleaved over the rounds; the figures are the totals over
 * the rounds. Goal (the issue's): (a) reaches at least half of (b)'s throughput.
 *
 * Settings also come from the environment: BENCH_MODELS, BENCH_DURATION,
 * BENCH_WARMUP, BENCH_ROUNDS, BENCH_CONCURRENCY. The temporary database is
 * removed at the end, on failure and on Ctrl-C.
 */

import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createYoga } from "graphql-yoga";
import { type Database, openDatabase } from "../src/db/client.ts";
import type { PrismaClient } from "../src/generated/prisma/client.ts";
import { schema } from "../src/graphql/schema.ts";
import {
  DASHBOARD_QUERY,
  type DashboardResult,
  dashboardContext,
  graphqlDashboard,
  handWrittenDashboard,
  seedDashboard,
} from "./support/dashboard.ts";
import { benchOptions } from "./support/options.ts";
import { cleanUpOnSignals, cleanup, trackFolder } from "./support/processes.ts";

const GOAL = 0.5;

interface Settings {
  models: number;
  durationS: number;
  warmupS: number;
  rounds: number;
  concurrency: number;
  json: boolean;
}

const USAGE = `usage: npm run bench:dashboard -- [options]
  --models N        models in the database, at most 100 (the query asks for 100; default 100, env BENCH_MODELS)
  --duration S      measured seconds per target and round (default 5, env BENCH_DURATION)
  --warmup S        unmeasured load per target before the first round (default 2, env BENCH_WARMUP)
  --rounds N        interleaved rounds (default 3, env BENCH_ROUNDS)
  --concurrency N   requests in flight (default 1, env BENCH_CONCURRENCY)
  --json            print the figures as JSON instead of a table`;

function readSettings(): Settings {
  const { numbers, json } = benchOptions(USAGE, {
    models: { env: "BENCH_MODELS", fallback: 100, integer: true },
    duration: { env: "BENCH_DURATION", fallback: 5, integer: false },
    warmup: { env: "BENCH_WARMUP", fallback: 2, integer: false },
    rounds: { env: "BENCH_ROUNDS", fallback: 3, integer: true },
    concurrency: { env: "BENCH_CONCURRENCY", fallback: 1, integer: true },
  });
  if (numbers.models > 100) {
    process.stderr.write(`--models: at most 100 (the dashboard query asks for the first 100)\n`);
    process.exit(2);
  }
  return {
    models: numbers.models,
    durationS: numbers.duration,
    warmupS: numbers.warmup,
    rounds: numbers.rounds,
    concurrency: numbers.concurrency,
    json,
  };
}

const progress = (line: string) => process.stderr.write(`${line}\n`);

const TARGETS = ["a", "yoga", "b"] as const;
type TargetName = (typeof TARGETS)[number];
const LABELS: Record<TargetName, string> = {
  a: "(a)  GraphQL, graphql() in-process",
  yoga: "(a') GraphQL, yoga fetch handler",
  b: "(b)  hand-written Prisma findMany",
};

type Run = () => Promise<DashboardResult>;

function targets(prisma: PrismaClient): Record<TargetName, Run> {
  const yoga = createYoga({
    schema,
    graphqlEndpoint: "/graphql",
    landingPage: false,
    graphiql: false,
    logging: false,
    context: () => dashboardContext(prisma),
  });
  const body = JSON.stringify({ query: DASHBOARD_QUERY, operationName: "Dashboard" });
  return {
    a: () => graphqlDashboard(prisma),
    yoga: async () => {
      const response = await yoga.fetch("http://hangar.bench/graphql", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/json" },
        body,
      });
      const result = (await response.json()) as { data?: DashboardResult; errors?: { message: string }[] };
      if (!response.ok || result.errors?.length || !result.data) {
        throw new Error(`yoga answered ${response.status}: ${result.errors?.[0]?.message ?? "no data"}`);
      }
      return result.data;
    },
    b: () => handWrittenDashboard(prisma),
  };
}

interface Window {
  requests: number;
  seconds: number;
  latenciesMs: number[];
}

/** Closed loop: `concurrency` callers, each sending its next request when its last one is answered. */
async function drive(run: Run, concurrency: number, seconds: number): Promise<Window> {
  const latenciesMs: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  const caller = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      await run();
      latenciesMs.push(performance.now() - t0);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  return { requests: latenciesMs.length, seconds: (performance.now() - start) / 1000, latenciesMs };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

interface Figures {
  requestsPerSecond: number;
  requests: number;
  seconds: number;
  perRoundRps: number[];
  latencyMs: { p50: number; p90: number; p99: number; mean: number };
}

function figures(windows: Window[]): Figures {
  const requests = windows.reduce((sum, w) => sum + w.requests, 0);
  const seconds = windows.reduce((sum, w) => sum + w.seconds, 0);
  const all = windows.flatMap((w) => w.latenciesMs).sort((x, y) => x - y);
  return {
    requestsPerSecond: requests / seconds,
    requests,
    seconds,
    perRoundRps: windows.map((w) => w.requests / w.seconds),
    latencyMs: {
      p50: percentile(all, 50),
      p90: percentile(all, 90),
      p99: percentile(all, 99),
      mean: all.reduce((sum, x) => sum + x, 0) / Math.max(1, all.length),
    },
  };
}

async function main(): Promise<void> {
  const settings = readSettings();
  cleanUpOnSignals();
  const dataDir = await mkdtemp(path.join(tmpdir(), "hangar-bench-dashboard-"));
  trackFolder(dataDir);

  // First pass, with every SQL statement counted: build the data, check both answers agree.
  let counting = false;
  let statements = 0;
  progress(`building ${settings.models} models in a temporary PGlite (${dataDir})...`);
  let db: Database = await openDatabase({
    databaseUrl: null,
    dataDir,
    onQuery: () => {
      if (counting) statements++;
    },
  });
  let statementsPerRequest: Record<TargetName, number>;
  try {
    await seedDashboard(db.prisma, 0, settings.models);
    const run = targets(db.prisma);
    const answers = {} as Record<TargetName, DashboardResult>;
    statementsPerRequest = {} as Record<TargetName, number>;
    for (const name of TARGETS) {
      statements = 0;
      counting = true;
      answers[name] = await run[name]();
      counting = false;
      statementsPerRequest[name] = statements;
    }
    for (const name of TARGETS) {
      // As JSON: graphql() builds its answer from null-prototype objects.
      if (JSON.stringify(answers[name]) !== JSON.stringify(answers.b)) {
        throw new Error(`${LABELS[name].trim()} and ${LABELS.b.trim()} answer different data`);
      }
    }
  } finally {
    await db.close();
  }

  // Measured pass: the same database, opened without the statement hook (query events cost time).
  db = await openDatabase({ databaseUrl: null, dataDir });
  const windows: Record<TargetName, Window[]> = { a: [], yoga: [], b: [] };
  try {
    const run = targets(db.prisma);
    for (const name of TARGETS) {
      progress(`warming up ${LABELS[name].trim()} for ${settings.warmupS} s...`);
      await drive(run[name], settings.concurrency, settings.warmupS);
    }
    for (let round = 1; round <= settings.rounds; round++) {
      for (const name of TARGETS) {
        const window = await drive(run[name], settings.concurrency, settings.durationS);
        windows[name].push(window);
        progress(
          `round ${round}/${settings.rounds} ${LABELS[name].trim()}: ${(window.requests / window.seconds).toFixed(1)} req/s`,
        );
      }
    }
  } finally {
    await db.close();
  }

  const results = Object.fromEntries(TARGETS.map((name) => [name, figures(windows[name])])) as Record<
    TargetName,
    Figures
  >;
  const ratio = results.a.requestsPerSecond / results.b.requestsPerSecond;
  const yogaRatio = results.yoga.requestsPerSecond / results.b.requestsPerSecond;
  const report = {
    settings,
    database: "PGlite, in-process",
    statementsPerRequest,
    results,
    ratio,
    yogaRatio,
    goal: GOAL,
    goalMet: ratio >= GOAL,
  };
  if (settings.json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const lines = [
    `Dashboard query, ${settings.models} models (2 environments each), PGlite in-process, ` +
      `concurrency ${settings.concurrency}, ${settings.rounds} rounds x ${settings.durationS} s after ${settings.warmupS} s warm-up`,
    "",
    `${"".padEnd(36)}${"req/s".padStart(9)}${"p50 ms".padStart(9)}${"p99 ms".padStart(9)}${"SQL/req".padStart(9)}`,
    ...TARGETS.map((name) => {
      const r = results[name];
      return (
        `${LABELS[name].padEnd(36)}${r.requestsPerSecond.toFixed(1).padStart(9)}` +
        `${r.latencyMs.p50.toFixed(2).padStart(9)}${r.latencyMs.p99.toFixed(2).padStart(9)}` +
        `${String(statementsPerRequest[name]).padStart(9)}`
      );
    }),
    "",
    `ratio (a)/(b):  ${ratio.toFixed(2)}  goal >= ${GOAL}: ${ratio >= GOAL ? "met" : "NOT met"}`,
    `ratio (a')/(b): ${yogaRatio.toFixed(2)}  (for reference)`,
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

try {
  await main();
} finally {
  await cleanup();
}
