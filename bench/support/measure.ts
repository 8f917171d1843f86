/**
 * One measurement of a benchmark: the load generator's figures (support/load.ts, in a process of its
 * own) plus the CPU time per answered request of the processes serving it, over the measured window;
 * and the medians of several rounds of it.
 */
import os from "node:os";
import { cpuMsOf, machineBusyMs, treeCpuMsOf } from "./cpu.ts";
import type { LoadOptions, LoadResult, Percentiles } from "./load.ts";
import { runLoadProcess } from "./load-process.ts";
import { median } from "./median.ts";

/** A process whose CPU a measurement reads: `tree` counts every process below it too (a fenced replica). */
export interface Watched {
  pid: number | null;
  tree?: boolean;
}

export interface Measurement<K extends string = string> extends LoadResult {
  /** CPU microseconds per answered request, by process (the generator's own, and each watched one). */
  cpuUsPerRequest: Record<K | "generator", number | null>;
  /**
   * CPU time that other processes of the machine used in the measured window, as a share of all the
   * machine's cores over it (null where /proc cannot tell): how far the figures are another load's.
   */
  otherCpuShare: number | null;
}

export async function measure<K extends string>(
  options: LoadOptions,
  watched: Record<K, Watched>,
): Promise<Measurement<K>> {
  const names = Object.keys(watched) as K[];
  const read = () =>
    names.map((name) => {
      const { pid, tree } = watched[name];
      return tree ? treeCpuMsOf(pid) : cpuMsOf(pid);
    });
  let before: (number | null)[] = [];
  let after: (number | null)[] = [];
  let machineBefore: number | null = null;
  let machineAfter: number | null = null;
  const result = await runLoadProcess(options, {
    start() {
      machineBefore = machineBusyMs();
      before = read();
    },
    end() {
      machineAfter = machineBusyMs();
      after = read();
    },
  });
  const perRequest = (ms: number | null) =>
    ms === null || result.requests === 0 ? null : (ms * 1000) / result.requests;
  const cpu = { generator: perRequest(result.cpuMs) } as Record<K | "generator", number | null>;
  let ours: number | null = result.cpuMs;
  names.forEach((name, i) => {
    const from = before[i] ?? null;
    const to = after[i] ?? null;
    const spent = from === null || to === null ? null : to - from;
    cpu[name] = perRequest(spent);
    ours = ours === null || spent === null ? null : ours + spent;
  });
  const machine = machineBefore === null || machineAfter === null ? null : machineAfter - machineBefore;
  const otherCpuShare =
    machine === null || ours === null
      ? null
      : Math.max(0, machine - ours) / (result.seconds * 1000 * os.availableParallelism());
  return { ...result, cpuUsPerRequest: cpu, otherCpuShare };
}

/** Medians over the rounds, figure by figure (errors and waits summed; a single round is returned as is). */
export function combine<K extends string>(rounds: Measurement<K>[]): Measurement<K> {
  const first = rounds[0] as Measurement<K>;
  if (rounds.length === 1) return first;
  const med = (pick: (m: Measurement<K>) => number | null | undefined) => {
    const values = rounds.map(pick).filter((v): v is number => typeof v === "number");
    return values.length ? median(values) : null;
  };
  const percentiles = (pick: (m: Measurement<K>) => Percentiles | null): Percentiles => {
    const at = (key: keyof Percentiles) => med((m) => pick(m)?.[key]) ?? Number.NaN;
    return {
      p50: at("p50"),
      p90: at("p90"),
      p99: at("p99"),
      p999: at("p999"),
      max: at("max"),
      mean: at("mean"),
    };
  };
  const cpu = {} as Record<K | "generator", number | null>;
  for (const name of Object.keys(first.cpuUsPerRequest) as (K | "generator")[]) {
    cpu[name] = med((m) => m.cpuUsPerRequest[name]);
  }
  return {
    ...first,
    requests: med((m) => m.requests) ?? 0,
    non2xx: rounds.reduce((sum, m) => sum + m.non2xx, 0),
    errors: rounds.reduce((sum, m) => sum + m.errors, 0),
    queued: rounds.reduce((sum, m) => sum + m.queued, 0),
    rps: med((m) => m.rps) ?? 0,
    cpuMs: med((m) => m.cpuMs) ?? 0,
    latencyMs: percentiles((m) => m.latencyMs),
    lagMs: first.lagMs ? percentiles((m) => m.lagMs) : null,
    cpuUsPerRequest: cpu,
    otherCpuShare: med((m) => m.otherCpuShare),
  };
}

/** otherCpuShare as a table shows it: a percentage, or "-". */
export function otherCpuText(m: Measurement): string {
  return m.otherCpuShare === null ? "-" : `${Math.round(m.otherCpuShare * 100)}%`;
}

/** The machine's load average now, with a note on stderr when other work will make the figures noisy. */
export function loadBeforeStart(): number {
  const load = os.loadavg()[0] ?? 0;
  if (load > 0.5) {
    process.stderr.write(
      `note: load average ${load.toFixed(2)} before the start: other work on this machine makes the figures noisy\n`,
    );
  }
  return load;
}
