import type { Command } from "commander";
import { action, withApi, withGlobals } from "../command.ts";
import { CliError, UsageError } from "../errors.ts";
import { onInterrupt } from "../follow.ts";
import { info, printJson, printJsonLine, printTable } from "../output.ts";
import type { GlobalOptions } from "../target.ts";

/** The windows the table shows, one row each (seconds, and how a row names it). */
const WINDOWS = [
  [60, "1 min"],
  [300, "5 min"],
  [3600, "1 h"],
] as const;

const FIGURES =
  "windowSeconds requests errors requestsPerSecond latencyMs { p50 p95 p99 } coldStarts coldStartMs { p50 p95 p99 }";

const METRICS = `query Metrics($id: ID!) {
  deployment(id: $id) {
    id name status activeReplicaCount
    ${WINDOWS.map(([seconds]) => `w${seconds}: metrics(windowSeconds: ${seconds}) { ${FIGURES} }`).join("\n    ")}
  }
}`;

interface Latency {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

interface Figures {
  windowSeconds: number;
  requests: number;
  errors: number;
  requestsPerSecond: number;
  latencyMs: Latency;
  coldStarts: number;
  coldStartMs: Latency;
}

type MetricsAnswer = {
  deployment:
    | ({ id: string; name: string; status: string; activeReplicaCount: number } & Record<string, unknown>)
    | null;
};

/** A reading as --json prints it: the deployment and its figures per window. */
export interface MetricsReading {
  at: string;
  deploymentId: string;
  name: string;
  status: string;
  replicas: number;
  windows: Figures[];
}

function ms(value: number | null): string {
  if (value === null) return "";
  return value < 10 ? `${value.toFixed(1)} ms` : `${Math.round(value)} ms`;
}

function percent(part: number, whole: number): string {
  return whole === 0 ? "" : `${((100 * part) / whole).toFixed(1)}%`;
}

function printReading(reading: MetricsReading): void {
  info(
    `${reading.name} (${reading.deploymentId}): ${reading.status}, ${reading.replicas} replica${reading.replicas === 1 ? "" : "s"}, at ${reading.at}`,
  );
  printTable(
    reading.windows.map((w, i) => ({
      window: WINDOWS[i]?.[1] ?? `${w.windowSeconds} s`,
      requests: String(w.requests),
      rps: w.requestsPerSecond.toFixed(2),
      errors: w.errors === 0 ? "0" : `${w.errors} (${percent(w.errors, w.requests)})`,
      p50: ms(w.latencyMs.p50),
      p95: ms(w.latencyMs.p95),
      p99: ms(w.latencyMs.p99),
      cold: String(w.coldStarts),
      coldP50: ms(w.coldStartMs.p50),
    })),
    [
      { key: "window", header: "WINDOW" },
      { key: "requests", header: "REQUESTS" },
      { key: "rps", header: "REQ/S" },
      { key: "errors", header: "5XX" },
      { key: "p50", header: "P50" },
      { key: "p95", header: "P95" },
      { key: "p99", header: "P99" },
      { key: "cold", header: "COLD STARTS" },
      { key: "coldP50", header: "COLD P50" },
    ],
  );
}

function parseInterval(raw: string): number {
  const seconds = Number(raw);
  if (!Number.isFinite(seconds) || seconds < 0.5 || seconds > 3600) {
    throw new UsageError(`--interval must be a number of seconds from 0.5 to 3600, got '${raw}'`);
  }
  return seconds;
}

/** `hangar metrics DEPLOYMENT`: its traffic, latency and cold starts over the last minute, 5 minutes and hour. */
export function register(program: Command): void {
  withGlobals(
    program
      .command("metrics")
      .argument("<deployment>", "deployment ID (`hangar deployments MODEL` lists them)")
      .option("-w, --watch", "keep refreshing until Ctrl-C (the default on a terminal, without --json)")
      .option("--once", "print once and exit (the default with --json or when stdout is not a terminal)")
      .option("--interval <seconds>", "seconds between refreshes", "2")
      .description(
        "show a deployment's requests, errors, latency and cold starts, every Hangar process together",
      )
      .addHelpText(
        "after",
        `
Figures are summed over every Hangar process sharing the database; latencies are percentiles of
histogram buckets (1 ms to 60 s). A cold start is a wake-up from zero caused by a request, timed from
that request's arrival to its answer. --json prints one reading {"at", "deploymentId", "name",
"status", "replicas", "windows": [...]}; with --watch, one such line per refresh.

Examples:
  $ hangar metrics dep_3kTq9x
  $ hangar metrics dep_3kTq9x --json | jq '.windows[] | select(.windowSeconds == 300) | .latencyMs.p99'`,
      ),
  ).action(
    action(
      async (id: string, opts: GlobalOptions & { watch?: boolean; once?: boolean; interval: string }) => {
        const intervalMs = parseInterval(opts.interval) * 1000;
        if (opts.watch && opts.once) throw new UsageError("--watch and --once cannot be used together");
        const live = opts.watch === true || (!opts.once && !opts.json && process.stdout.isTTY === true);
        await withApi(opts, async (api) => {
          const read = async (): Promise<MetricsReading> => {
            const data = await api.query<MetricsAnswer>(METRICS, { id });
            const d = data.deployment;
            if (!d)
              throw new CliError(`no deployment with ID '${id}' (\`hangar deployments MODEL\` lists them)`);
            return {
              at: new Date().toISOString(),
              deploymentId: d.id,
              name: d.name,
              status: d.status,
              replicas: d.activeReplicaCount,
              windows: WINDOWS.map(([seconds]) => d[`w${seconds}`] as Figures),
            };
          };
          if (!live) {
            const reading = await read();
            if (opts.json) printJson(reading);
            else printReading(reading);
            return;
          }
          let stopped = false;
          let wake: (() => void) | null = null;
          const dispose = onInterrupt(() => {
            stopped = true;
            wake?.();
          });
          try {
            while (!stopped) {
              const reading = await read();
              if (opts.json) printJsonLine(reading);
              else {
                // Redrawn in place on a terminal: the table stays small and current.
                if (process.stdout.isTTY) process.stdout.write("\x1b[H\x1b[2J");
                printReading(reading);
              }
              await new Promise<void>((resolve) => {
                wake = resolve;
                setTimeout(resolve, intervalMs);
              });
            }
          } finally {
            dispose();
          }
        });
      },
    ),
  );
}
