/**
 * What a replica may use (API.md section 9): the cores of a CPU quota, its memory (over it, it is
 * killed) and a cap on its processes. hangar.json's `resources` may set `cpu` and `memoryMb`; what it
 * leaves out, and the process cap, come from the server's settings (HANGAR_REPLICA_CPU,
 * HANGAR_REPLICA_MEMORY_MB, HANGAR_REPLICA_PIDS, read by config.ts with the same bounds).
 *
 * The rule: the bounds, the defaults, and reading hangar.json's `resources` and what a deployment row
 * stored. The runtime enforces the result (cgroups); the build (runtime/build.ts) asks this.
 */
export interface Resources {
  /** Cores, as a CPU quota: 0.5 is half of one core's time, 2 two cores'. */
  cpu: number;
  /** Memory in MB (MiB); a replica over it is killed. */
  memoryMb: number;
  /** The most processes (threads count) a replica may run at once. */
  pids: number;
}

export type ResourceName = keyof Resources;

/** The defaults of the server's settings (README "Settings"). */
export const DEFAULT_RESOURCES: Readonly<Resources> = Object.freeze({ cpu: 1, memoryMb: 1024, pids: 256 });

/** The keys hangar.json's `resources` takes; `pids` is the server's alone. */
export const MANIFEST_RESOURCES: readonly ResourceName[] = ["cpu", "memoryMb"];

interface Bound {
  min: number;
  max: number;
  integer: boolean;
  /** How the value is counted, for messages: "cores", "MB", "processes". */
  unit: string;
  /** Why nothing less is allowed, for the message. */
  below: string;
  /** A valid value to show, for the message. */
  example: string;
}

export const RESOURCE_BOUNDS: Readonly<Record<ResourceName, Readonly<Bound>>> = Object.freeze({
  // The kernel refuses a CPU quota under 1 ms per 100 ms period (cgroup cpu.max, cfs_quota_us).
  cpu: {
    min: 0.01,
    max: 64,
    integer: false,
    unit: "cores",
    below: "the smallest CPU quota the kernel takes",
    example: "0.5 or 2",
  },
  memoryMb: {
    min: 64,
    max: 1_048_576,
    integer: true,
    unit: "MB",
    below: "a replica cannot start in less",
    example: "512 or 2048",
  },
  // A Node replica alone runs about a dozen threads, and each counts.
  pids: {
    min: 32,
    max: 4_194_304,
    integer: true,
    unit: "processes",
    below: "a replica's own threads count",
    example: "256",
  },
});

/**
 * Why `value` cannot be the resource `name`, or null when it can. The message starts at "must" so
 * that the caller puts the field or setting in front (`resources.cpu must be ...`); `shown` is how the
 * value is quoted (JSON for hangar.json, the raw text of an environment variable).
 */
export function resourceProblem(
  name: ResourceName,
  value: unknown,
  shown: string = JSON.stringify(value) ?? String(value),
): string | null {
  const bound = RESOURCE_BOUNDS[name];
  const kind = bound.integer ? "a whole number" : "a number";
  if (typeof value !== "number" || !Number.isFinite(value)) {
    return `must be ${kind} of ${bound.unit} (such as ${bound.example}), got ${shown}`;
  }
  if (bound.integer && !Number.isInteger(value)) {
    return `must be a whole number of ${bound.unit}, got ${shown}`;
  }
  if (value < bound.min) {
    return `must be at least ${bound.min} ${bound.unit} (${bound.below}), got ${shown}`;
  }
  if (value > bound.max) {
    return `must be at most ${bound.max} ${bound.unit}, got ${shown}`;
  }
  return null;
}

/**
 * hangar.json's `resources` (undefined when it has none) over the server's `defaults`: what the
 * replicas run with, or the first problem, naming its field (`resources.memoryMb must be ...`).
 * Unknown keys are refused, so that a typo (`memory`, `cpus`) does not silently run with a default.
 */
export function resolveResources(
  value: unknown,
  defaults: Resources,
): { resources: Resources } | { problem: string } {
  if (value === undefined) return { resources: { ...defaults } };
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return {
      problem: `resources must be an object such as { "cpu": 1, "memoryMb": 1024 }, got ${JSON.stringify(value)}`,
    };
  }
  const given = value as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (key === "pids") {
      return {
        problem:
          "resources.pids cannot be set in hangar.json: the process cap is the server's (HANGAR_REPLICA_PIDS)",
      };
    }
    if (!(MANIFEST_RESOURCES as readonly string[]).includes(key)) {
      return {
        problem: `resources.${key} is not a resource: resources takes ${MANIFEST_RESOURCES.join(" and ")}`,
      };
    }
  }
  const resources = { ...defaults };
  for (const name of MANIFEST_RESOURCES) {
    if (!(name in given)) continue;
    const problem = resourceProblem(name, given[name]);
    if (problem) return { problem: `resources.${name} ${problem}` };
    resources[name] = given[name] as number;
  }
  return { resources };
}

/**
 * Resources a deployment row stored (JSON): null when it stored none (a deployment not built yet, a
 * row older than the column) or what it holds is not a whole, valid set.
 */
export function storedResources(value: unknown): Resources | null {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return null;
  const stored = value as Record<string, unknown>;
  const names = Object.keys(RESOURCE_BOUNDS) as ResourceName[];
  if (names.some((name) => resourceProblem(name, stored[name]) !== null)) return null;
  return { cpu: stored.cpu as number, memoryMb: stored.memoryMb as number, pids: stored.pids as number };
}

/** What a deployment runs with: what its build stored, else (not built yet, or older) the defaults. */
export function deploymentResources(stored: unknown, defaults: Resources): Resources {
  return storedResources(stored) ?? { ...defaults };
}
