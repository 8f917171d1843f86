import { parseArgs } from "node:util";

/** A positive number from a flag, else from an environment variable, else the default; exit 2 when invalid. */
export function numberOption(
  flag: string | undefined,
  env: string,
  fallback: number,
  integer: boolean,
  usage: string,
): number {
  const raw = flag ?? process.env[env];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || (integer && !Number.isInteger(value))) {
    process.stderr.write(`invalid value '${raw}' (${env})\n${usage}\n`);
    process.exit(2);
  }
  return value;
}

/** A numeric flag `--name`: its environment variable and default (see numberOption). */
export interface NumberFlag {
  env: string;
  fallback: number;
  integer: boolean;
}

/**
 * A benchmark's command line: `--help` (prints `usage`, exits 0), `--json`, the numeric flags of
 * `numbers` (each from its flag, else its environment variable, else its default) and the free-form
 * string flags named in `strings`. Exits 2 with the usage on any unknown flag or invalid number.
 */
export function benchOptions<N extends string, S extends string = never>(
  usage: string,
  numbers: Record<N, NumberFlag>,
  strings: readonly S[] = [],
): { numbers: Record<N, number>; strings: Partial<Record<S, string>>; json: boolean } {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  };
  for (const name of [...Object.keys(numbers), ...strings]) options[name] = { type: "string" };
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({ options }).values as Record<string, string | boolean | undefined>;
  } catch (error) {
    process.stderr.write(`${(error as Error).message}\n${usage}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const parsed = {} as Record<N, number>;
  for (const name of Object.keys(numbers) as N[]) {
    const { env, fallback, integer } = numbers[name];
    parsed[name] = numberOption(values[name] as string | undefined, env, fallback, integer, usage);
  }
  const text: Partial<Record<S, string>> = {};
  for (const name of strings) {
    const value = values[name];
    if (typeof value === "string") text[name] = value;
  }
  return { numbers: parsed, strings: text, json: values.json === true };
}

/** The settings of a saturated-load benchmark (bench:peers, bench:metrics). */
export interface LoadBenchSettings {
  durationS: number;
  warmupS: number;
  connections: number;
  rounds: number;
  json: boolean;
}

/**
 * `npm run bench:<name>`'s command line for a saturated-load benchmark: duration, warm-up,
 * connections and rounds (`rounds` says what a round is and its default), and --json.
 */
export function loadBenchSettings(
  name: string,
  rounds: { fallback: number; meaning: string },
): LoadBenchSettings {
  const usage = `usage: npm run bench:${name} -- [options]
  --duration S      measured seconds per run (default 10, env BENCH_DURATION)
  --warmup S        unmeasured load before each run (default 3, env BENCH_WARMUP)
  --connections N   connections of the saturated runs (default 64, env BENCH_CONNECTIONS)
  --rounds N        ${rounds.meaning} (default ${rounds.fallback}, env BENCH_ROUNDS)
  --json            print the figures as JSON instead of a table`;
  const { numbers, json } = benchOptions(usage, {
    duration: { env: "BENCH_DURATION", fallback: 10, integer: false },
    warmup: { env: "BENCH_WARMUP", fallback: 3, integer: false },
    connections: { env: "BENCH_CONNECTIONS", fallback: 64, integer: true },
    rounds: { env: "BENCH_ROUNDS", fallback: rounds.fallback, integer: true },
  });
  return {
    durationS: numbers.duration,
    warmupS: numbers.warmup,
    connections: numbers.connections,
    rounds: numbers.rounds,
    json,
  };
}
