import { constants, readFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { ownerIsAlive, ownerOf } from "./process-identity.ts";

/**
 * Resource limits for replicas through cgroups, v1 (one hierarchy per controller) or v2 (one tree).
 * Each Hangar process keeps its replicas' groups under its own cgroup, in `hangar/<owner>/<replicaId>`
 * (v1: once per controller), `<owner>` naming the process (pid, start time, PID namespace) so that a
 * later Hangar can tell the groups of a dead process from those of a live one. A replica's child writes
 * its own PID into the group before it execs (joinCommand). Hangar moves itself only where v2 demands
 * it: a group that hands controllers to its children may hold no process (the root excepted), so when
 * Hangar's own cgroup holds processes (Hangar, and whatever started it), they move into its child
 * `leaf` first, as systemd's DelegateSubgroup= or a container's init does.
 */

export interface CgroupLimits {
  /** Cores, fractional allowed (a CFS quota per 100 ms period); at least 0.01. */
  cpu: number;
  memoryMb: number;
  /** Processes (and threads) the group may hold at once. */
  pids: number;
}

export interface Cgroups {
  /** 1 or 2 when a cgroup filesystem with the controllers was found, null when none was. */
  readonly version: 1 | 2 | null;
  /** The name of this process's groups (`hangar/<owner>`). */
  readonly owner: string;
  /** Limits will hold for replicas created here. */
  readonly enforced: boolean;
  /** Why not, in one sentence, when !enforced. */
  readonly reason: string | null;
  /** Creates the replica's group(s) with the limits set; throws with a clear message on failure. */
  create(replicaId: string, limits: CgroupLimits): Promise<ReplicaCgroup>;
  /**
   * Readies the kernel for the cgroup migration a replica's join makes shortly (called as its start is
   * prepared): never waited for, never fails. The first migration after a quiet spell waits for an RCU
   * grace period (the kernel's cgroup_threadgroup_rwsem), 10-40 ms on a 2-core machine; one that
   * follows another closely does not. So Hangar moves itself into the cgroup it is already in (which
   * moves nothing), on a thread of libuv's pool, and the grace period passes while the start is
   * prepared and spawned rather than after.
   */
  warm(): void;
  /** At start: kills processes left in groups of Hangar processes that are dead, removes those groups; returns how many processes were killed. */
  reapLeftovers(): Promise<number>;
  /** Kills every replica group of this process and removes this process's group (shutdown). */
  close(): Promise<void>;
}

export interface ReplicaCgroup {
  readonly replicaId: string;
  /** The cgroup.procs files (v1: one per controller) a child writes its own PID into before it execs the replica. */
  readonly procsFiles: string[];
  /** Whether the kernel OOM-killed something in this group; after remove(), what it was just before. */
  oomKilled(): Promise<boolean>;
  /** The processes now in the group (PIDs). */
  pids(): Promise<number[]>;
  /** SIGKILLs every process in the group (v2: cgroup.kill when present) and waits until it is empty (bounded). */
  killAll(): Promise<void>;
  /** Removes the group (after killAll); never throws for an already-removed group. */
  remove(): Promise<void>;
}

/** The file operations on a cgroup filesystem, a seam for the tests' fake tree. */
export interface CgroupFs {
  readFile(path: string): Promise<string>;
  /** Writes one value into an existing control file. */
  writeFile(path: string, data: string): Promise<void>;
  /** One level; EEXIST when it exists. */
  mkdir(path: string): Promise<void>;
  rmdir(path: string): Promise<void>;
  /** The names of the child groups. */
  subdirs(path: string): Promise<string[]>;
  exists(path: string): Promise<boolean>;
}

export interface CgroupsOptions {
  /** Where the cgroup mounts are, found by directory names (tests). Default: /proc/self/mountinfo. */
  root?: string;
  /** Contents of /proc/self/cgroup. */
  selfCgroup?: string;
  /** Contents of /proc/self/mountinfo (used when given, or when root is not). */
  mountinfo?: string;
  /** This process's group name. Default: ownerOf(process.pid). */
  owner?: string;
  /** Whether the Hangar process that named a group `owner` still runs. Default: ownerIsAlive. */
  isAlive?: (owner: string) => boolean;
  fs?: CgroupFs;
  /** Sends SIGKILL (a process already gone is no error). */
  kill?: (pid: number) => void;
  /** How long killing a group's processes or removing a group may take. Default 5 s. */
  settleMs?: number;
}

/** The join shell's exit status when a PID could not be written: the replica never runs unlimited. */
export const JOIN_FAILED_EXIT_CODE = 125;

// Paths arrive as positional parameters, never inside the script text: no path can become shell code.
// `$$` is the shell's PID, which `exec` hands to the replica.
const JOIN_SCRIPT =
  'n=$1; shift; while [ "$n" -gt 0 ]; do ' +
  `echo $$ > "$1" || { echo "hangar: cannot join the cgroup $1" >&2; exit ${JOIN_FAILED_EXIT_CODE}; }; ` +
  'n=$((n - 1)); shift; done; exec "$@"';

/**
 * The command that runs `file args` inside the groups: a shell writes its own PID into every
 * procs file, then execs the replica (same PID), so the replica is limited from its first instruction
 * and Hangar itself stays where it is. Returns [file, args] for spawn().
 */
export function joinCommand(
  procsFiles: readonly string[],
  file: string,
  args: readonly string[],
): [string, string[]] {
  for (const f of procsFiles) {
    if (!isAbsolute(f)) throw new Error(`a cgroup procs file must be an absolute path: ${f}`);
  }
  return [
    "/bin/sh",
    ["-c", JOIN_SCRIPT, "hangar-join", String(procsFiles.length), ...procsFiles, file, ...args],
  ];
}

const CONTROLLERS = ["memory", "cpu", "pids"] as const;
type Controller = (typeof CONTROLLERS)[number];

const CFS_PERIOD_US = 100_000;
/** The kernel refuses quotas under 1 ms. */
const MIN_QUOTA_US = 1_000;
const GROUPS_DIR = "hangar";
/** v2: the child of Hangar's own cgroup that the processes in it move into (see the top). */
const LEAF = "leaf";
/** Rounds of moving, for processes forked while the others moved. */
const LEAF_ROUNDS = 5;
const PROBE = "probe";
const POLL_MS = 20;
const SAFE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

// ---------------------------------------------------------------------------------------------
// Errors: every cgroupfs operation says what it did to which file.

class StepError extends Error {
  constructor(
    readonly op: string,
    readonly path: string,
    readonly code: string,
  ) {
    super(`${op} ${path}: ${code}`);
  }
}

function codeOf(err: unknown): string {
  if (err instanceof StepError) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : err instanceof Error ? err.message : String(err);
}

async function step<T>(op: string, path: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new StepError(op, path, codeOf(err));
  }
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));

export const nodeCgroupFs: CgroupFs = {
  readFile: (path) => fsp.readFile(path, "utf8"),
  async writeFile(path, data) {
    // No O_CREAT: cgroupfs makes its files itself. One write() per value, as the kernel parses each.
    const handle = await fsp.open(path, constants.O_WRONLY);
    try {
      await handle.write(data);
    } finally {
      await handle.close();
    }
  },
  mkdir: (path) => fsp.mkdir(path),
  rmdir: (path) => fsp.rmdir(path),
  async subdirs(path) {
    return (await fsp.readdir(path, { withFileTypes: true }))
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  },
  exists: (path) =>
    fsp.access(path).then(
      () => true,
      () => false,
    ),
};

function defaultKill(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch (err) {
    if (codeOf(err) !== "ESRCH") throw err;
  }
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------
// Discovery: which cgroup hierarchies serve the controllers, and where Hangar's own cgroup is in each.

interface SelfLine {
  controllers: string[];
  path: string;
}

/** /proc/self/cgroup: `id:controllers:path`; v2's line is `0::path`. Paths may hold colons. */
export function parseSelfCgroup(text: string): SelfLine[] {
  const out: SelfLine[] = [];
  for (const line of text.split("\n")) {
    const first = line.indexOf(":");
    const second = line.indexOf(":", first + 1);
    if (first < 0 || second < 0) continue;
    const list = line.slice(first + 1, second);
    out.push({ controllers: list ? list.split(",") : [], path: line.slice(second + 1) });
  }
  return out;
}

interface CgroupMount {
  root: string;
  mountPoint: string;
  fstype: string;
  superOptions: string[];
}

const unescapeMount = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));

/** The cgroup and cgroup2 mounts of /proc/self/mountinfo. */
export function parseMountinfo(text: string): CgroupMount[] {
  const out: CgroupMount[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    const fstype = fields[dash + 1];
    if (dash < 0 || (fstype !== "cgroup" && fstype !== "cgroup2")) continue;
    out.push({
      root: unescapeMount(fields[3] ?? "/"),
      mountPoint: unescapeMount(fields[4] ?? ""),
      fstype,
      superOptions: (fields[dash + 3] ?? "").split(","),
    });
  }
  return out;
}

/** A directory of Hangar's own cgroup, in one hierarchy, with the needed controllers it serves. */
interface Hierarchy {
  controllers: Controller[];
  ownDir: string;
}

interface Layout {
  version: 1 | 2;
  hierarchies: Hierarchy[];
  /**
   * Hangar's own cgroup as /proc/self/cgroup said it at the start (v1: in the first hierarchy; v2:
   * without the leaf), for warm(); null when that was not the real file (tests).
   */
  self: { path: string; controller: string | null } | null;
}

type Discovery = { layout: Layout } | { version: 1 | 2 | null; reason: string };

/** A cgroup path inside a directory, without the trailing slash join() keeps for "/". */
function under(dir: string, path: string): string {
  const out = join(dir, path);
  return out.length > 1 && out.endsWith("/") ? out.slice(0, -1) : out;
}

/** Hangar's cgroup inside a mount: the mount shows the part of the tree below its root. */
function inMount(mount: CgroupMount, path: string): string | null {
  if (mount.root === "/") return under(mount.mountPoint, path);
  if (path === mount.root || path.startsWith(`${mount.root}/`)) {
    return under(mount.mountPoint, path.slice(mount.root.length));
  }
  return null;
}

async function discover(options: CgroupsOptions, fs: CgroupFs): Promise<Discovery> {
  let selfText = options.selfCgroup;
  if (selfText === undefined) {
    try {
      selfText = readFileSync("/proc/self/cgroup", "utf8");
    } catch (err) {
      return { version: null, reason: `no cgroups here: /proc/self/cgroup is unreadable (${codeOf(err)})` };
    }
  }
  let mounts: CgroupMount[] | null = null;
  if (options.mountinfo !== undefined) mounts = parseMountinfo(options.mountinfo);
  else if (options.root === undefined) {
    try {
      mounts = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
    } catch {
      mounts = null; // fall back to the usual directory names
    }
  }
  const root = options.root ?? "/sys/fs/cgroup";
  const lines = parseSelfCgroup(selfText);

  const v1 = CONTROLLERS.map((c) => ({ c, line: lines.find((l) => l.controllers.includes(c)) }));
  if (v1.some((x) => x.line)) {
    const missing = v1.filter((x) => !x.line).map((x) => x.c);
    if (missing.length > 0) {
      return { version: 1, reason: `the cgroup v1 ${missing.join(" and ")} controller is not mounted` };
    }
    const hierarchies: Hierarchy[] = [];
    for (const { c, line } of v1) {
      if (!line) continue;
      let ownDir: string | null = null;
      if (mounts) {
        for (const m of mounts) {
          if (m.fstype === "cgroup" && m.superOptions.includes(c)) ownDir ??= inMount(m, line.path);
        }
      } else {
        // A joint mount (cpu,cpuacct) is a directory named by its list, often with a link per controller.
        for (const name of [line.controllers.join(","), c]) {
          if (ownDir === null && (await fs.exists(join(root, name)))) {
            ownDir = under(join(root, name), line.path);
          }
        }
      }
      if (ownDir === null) {
        return {
          version: 1,
          reason: `the cgroup v1 ${c} hierarchy of Hangar's cgroup ${line.path} is not mounted`,
        };
      }
      const same = hierarchies.find((h) => h.ownDir === ownDir);
      if (same) same.controllers.push(c);
      else hierarchies.push({ controllers: [c], ownDir });
    }
    const first = v1[0]?.line;
    const self =
      options.selfCgroup === undefined && first ? { path: first.path, controller: v1[0]?.c ?? null } : null;
    return { layout: { version: 1, hierarchies, self } };
  }

  const unified = lines.find((l) => l.controllers.length === 0 && l.path.startsWith("/"));
  if (!unified) {
    return { version: null, reason: "no cgroup memory, cpu and pids controllers in /proc/self/cgroup" };
  }
  // Started from a process an earlier Hangar moved into its leaf: the groups belong beside the leaf.
  const ownPath =
    unified.path !== "/" && unified.path.endsWith(`/${LEAF}`)
      ? unified.path.slice(0, -LEAF.length - 1) || "/"
      : unified.path;
  let ownDir: string | null = null;
  if (mounts) {
    for (const m of mounts) if (m.fstype === "cgroup2") ownDir ??= inMount(m, ownPath);
  } else {
    for (const dir of [root, join(root, "unified")]) {
      if (ownDir === null && (await fs.exists(join(dir, "cgroup.controllers")))) ownDir = under(dir, ownPath);
    }
  }
  if (ownDir === null) {
    return {
      version: 2,
      reason: `the cgroup v2 tree holding Hangar's cgroup ${ownPath} is not mounted`,
    };
  }
  let available: string[];
  try {
    available = (await fs.readFile(join(ownDir, "cgroup.controllers"))).trim().split(/\s+/);
  } catch (err) {
    return {
      version: 2,
      reason: `cgroup v2 is not readable: ${codeOf(err)} (${join(ownDir, "cgroup.controllers")})`,
    };
  }
  const missing = CONTROLLERS.filter((c) => !available.includes(c));
  if (missing.length > 0) {
    return {
      version: 2,
      reason: `the cgroup v2 ${missing.join(", ")} ${missing.length > 1 ? "controllers are" : "controller is"} not available in Hangar's cgroup ${ownDir}`,
    };
  }
  const self = options.selfCgroup === undefined ? { path: ownPath, controller: null } : null;
  return { layout: { version: 2, hierarchies: [{ controllers: [...CONTROLLERS], ownDir }], self } };
}

// ---------------------------------------------------------------------------------------------
// Limits and their files.

interface LimitValues {
  memoryBytes: number;
  quotaUs: number;
  pids: number;
}

function limitValues(limits: CgroupLimits): LimitValues {
  const { cpu, memoryMb, pids } = limits;
  if (!Number.isFinite(cpu) || Math.round(cpu * CFS_PERIOD_US) < MIN_QUOTA_US) {
    throw new RangeError(`cpu must be at least ${MIN_QUOTA_US / CFS_PERIOD_US} cores, not ${cpu}`);
  }
  if (!Number.isSafeInteger(memoryMb) || memoryMb < 1) {
    throw new RangeError(`memoryMb must be a whole number of MB, at least 1, not ${memoryMb}`);
  }
  if (!Number.isSafeInteger(pids) || pids < 1) throw new RangeError(`pids must be at least 1, not ${pids}`);
  return { memoryBytes: memoryMb * 1024 * 1024, quotaUs: Math.round(cpu * CFS_PERIOD_US), pids };
}

const PROBE_LIMITS: LimitValues = { memoryBytes: 64 * 1024 * 1024, quotaUs: CFS_PERIOD_US, pids: 16 };

class Context {
  constructor(
    readonly layout: Layout,
    readonly owner: string,
    readonly fs: CgroupFs,
    readonly kill: (pid: number) => void,
    readonly isAlive: (owner: string) => boolean,
    readonly settleMs: number,
  ) {}

  get v2() {
    return this.layout.version === 2;
  }

  async write(dir: string, file: string, value: string): Promise<void> {
    const path = join(dir, file);
    await step(`write ${JSON.stringify(value)} to`, path, () => this.fs.writeFile(path, value));
  }

  async writeLimits(h: Hierarchy, dir: string, v: LimitValues): Promise<void> {
    const has = (file: string) => this.fs.exists(join(dir, file));
    if (this.v2) {
      await this.write(dir, "memory.max", String(v.memoryBytes));
      if (await has("memory.swap.max")) await this.write(dir, "memory.swap.max", "0");
      await this.write(dir, "cpu.max", `${v.quotaUs} ${CFS_PERIOD_US}`);
      await this.write(dir, "pids.max", String(v.pids));
      return;
    }
    if (h.controllers.includes("memory")) {
      // The plain limit first: the kernel wants memsw (memory + swap) never below it.
      await this.write(dir, "memory.limit_in_bytes", String(v.memoryBytes));
      if (await has("memory.memsw.limit_in_bytes")) {
        await this.write(dir, "memory.memsw.limit_in_bytes", String(v.memoryBytes));
      }
    }
    if (h.controllers.includes("cpu")) {
      await this.write(dir, "cpu.cfs_period_us", String(CFS_PERIOD_US));
      await this.write(dir, "cpu.cfs_quota_us", String(v.quotaUs));
    }
    if (h.controllers.includes("pids")) await this.write(dir, "pids.max", String(v.pids));
  }

  /** v2: a group's children get only the controllers enabled in its cgroup.subtree_control. */
  async enableControllers(dir: string): Promise<void> {
    if (!this.v2) return;
    const file = join(dir, "cgroup.subtree_control");
    const enabled = (await step("read", file, () => this.fs.readFile(file))).trim().split(/\s+/);
    const missing = CONTROLLERS.filter((c) => !enabled.includes(c));
    if (missing.length > 0)
      await this.write(dir, "cgroup.subtree_control", missing.map((c) => `+${c}`).join(" "));
  }

  ownerDir(h: Hierarchy): string {
    return join(h.ownDir, GROUPS_DIR, this.owner);
  }

  /** v2: enables the controllers in Hangar's own cgroup, moving the processes it holds into its leaf first. */
  async enableBelowOwn(dir: string): Promise<void> {
    try {
      await this.enableControllers(dir);
      return;
    } catch (err) {
      if (!this.v2 || codeOf(err) !== "EBUSY") throw err;
    }
    await this.moveIntoLeaf(dir);
    await this.enableControllers(dir);
  }

  private async moveIntoLeaf(dir: string): Promise<void> {
    const leaf = join(dir, LEAF);
    await step("mkdir", leaf, () => this.fs.mkdir(leaf)).catch((err: unknown) => {
      if (codeOf(err) !== "EEXIST") throw err;
    });
    for (let round = 0; round < LEAF_ROUNDS; round++) {
      const pids = await this.readPids(dir);
      if (pids.length === 0) return;
      for (const pid of pids) {
        // One PID per write, as the kernel takes them; a process that ended meanwhile needs no move.
        await this.write(leaf, "cgroup.procs", String(pid)).catch((err: unknown) => {
          if (codeOf(err) !== "ESRCH") throw err;
        });
      }
    }
  }

  /**
   * Makes `hangar/<owner>` in every hierarchy (and, v2, enables the controllers down to it). Once made
   * they stay (no other Hangar removes a live owner's group, nor the shared one while it holds it), so
   * later calls do nothing.
   */
  async ensureOwnerGroups(): Promise<void> {
    if (this.ownerGroupsMade) return;
    await this.makeOwnerGroups();
    this.ownerGroupsMade = true;
  }

  private ownerGroupsMade = false;

  private async makeOwnerGroups(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        for (const h of this.layout.hierarchies) {
          await this.enableBelowOwn(h.ownDir);
          for (const dir of [join(h.ownDir, GROUPS_DIR), this.ownerDir(h)]) {
            await step("mkdir", dir, () => this.fs.mkdir(dir)).catch((err: unknown) => {
              if (codeOf(err) !== "EEXIST") throw err;
            });
            await this.enableControllers(dir);
          }
        }
        return;
      } catch (err) {
        // Another Hangar's close() may remove the shared, empty `hangar` between two of our mkdirs.
        if (codeOf(err) !== "ENOENT" || attempt >= 3) throw err;
      }
    }
  }

  async readPids(dir: string): Promise<number[]> {
    const file = join(dir, "cgroup.procs");
    let text: string;
    try {
      text = await this.fs.readFile(file);
    } catch (err) {
      if (codeOf(err) === "ENOENT") return [];
      throw new StepError("read", file, codeOf(err));
    }
    // 0 stands for a process outside our PID namespace, and kill(0) would hit our own process group.
    return text
      .split("\n")
      .map(Number)
      .filter((pid) => Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid);
  }

  async pidsOf(dirs: readonly string[]): Promise<number[]> {
    const all = new Set<number>();
    for (const dir of dirs) for (const pid of await this.readPids(dir)) all.add(pid);
    return [...all].sort((a, b) => a - b);
  }

  /** The groups at and below `dir`, children before parents; none when it is gone. */
  async walk(dir: string): Promise<string[]> {
    let names: string[];
    try {
      names = await this.fs.subdirs(dir);
    } catch (err) {
      if (codeOf(err) === "ENOENT") return [];
      throw new StepError("list", dir, codeOf(err));
    }
    const out: string[] = [];
    for (const name of names) out.push(...(await this.walk(join(dir, name))));
    out.push(dir);
    return out;
  }

  /** SIGKILLs everything in the groups until they are empty; answers how many processes it signalled. */
  async killAndWait(dirs: readonly string[]): Promise<number> {
    const signalled = new Set<number>();
    const deadline = Date.now() + this.settleMs;
    const killFiles = new Map<string, boolean>();
    for (;;) {
      const pids = await this.pidsOf(dirs);
      if (pids.length === 0) return signalled.size;
      for (const pid of pids) signalled.add(pid);
      for (const dir of dirs) {
        // v2's cgroup.kill kills the group atomically, forks in flight included (and no pid can be reused in between).
        if (this.v2 && !killFiles.has(dir))
          killFiles.set(dir, await this.fs.exists(join(dir, "cgroup.kill")));
        if (killFiles.get(dir)) await this.write(dir, "cgroup.kill", "1");
      }
      if (![...killFiles.values()].some(Boolean)) for (const pid of pids) this.kill(pid);
      if (Date.now() >= deadline) {
        throw new Error(
          `${dirs[0]} still holds processes ${pids.join(", ")} ${this.settleMs} ms after SIGKILL`,
        );
      }
      await delay(POLL_MS);
    }
  }

  /** rmdir, waiting while exiting processes still pin the group; a group already gone is fine. */
  async rmdir(dir: string): Promise<void> {
    const deadline = Date.now() + this.settleMs;
    for (;;) {
      try {
        await this.fs.rmdir(dir);
        return;
      } catch (err) {
        const code = codeOf(err);
        if (code === "ENOENT") return;
        if (code !== "EBUSY" || Date.now() >= deadline) throw new StepError("rmdir", dir, code);
      }
      await delay(POLL_MS);
    }
  }

  /** Kills every process in the groups and below, then removes them bottom-up; answers how many it killed. */
  async destroy(tops: readonly string[]): Promise<number> {
    const groups: string[] = [];
    for (const top of tops) groups.push(...(await this.walk(top)));
    const killed = await this.killAndWait(groups);
    for (const dir of groups) await this.rmdir(dir);
    return killed;
  }
}

// ---------------------------------------------------------------------------------------------

class ReplicaGroup implements ReplicaCgroup {
  readonly procsFiles: string[];
  private removed = false;
  private oomBeforeRemoval = false;

  constructor(
    private readonly ctx: Context,
    readonly replicaId: string,
    private readonly dirs: string[],
    private readonly memoryDir: string,
  ) {
    this.procsFiles = dirs.map((dir) => join(dir, "cgroup.procs"));
  }

  async oomKilled(): Promise<boolean> {
    if (this.removed) return this.oomBeforeRemoval;
    const file = join(this.memoryDir, this.ctx.v2 ? "memory.events" : "memory.oom_control");
    return oomKills(await step("read", file, () => this.ctx.fs.readFile(file))) > 0;
  }

  pids(): Promise<number[]> {
    return this.ctx.pidsOf(this.dirs);
  }

  async killAll(): Promise<void> {
    const groups: string[] = [];
    for (const dir of this.dirs) groups.push(...(await this.ctx.walk(dir)));
    await this.ctx.killAndWait(groups);
  }

  async remove(): Promise<void> {
    if (this.removed) return;
    // The counter goes with the directory: keep it for a caller that asks why the replica died.
    this.oomBeforeRemoval = await this.oomKilled().catch(() => false);
    for (const dir of this.dirs) {
      const below = (await this.ctx.walk(dir)).filter((d) => d !== dir);
      for (const d of below) await this.ctx.rmdir(d);
      await this.ctx.rmdir(dir);
    }
    this.removed = true;
  }
}

/** The `oom_kill N` counter of v1 memory.oom_control and of v2 memory.events (0 when absent). */
export function oomKills(text: string): number {
  const m = /^oom_kill\s+(\d+)\s*$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

class DisabledCgroups implements Cgroups {
  readonly enforced = false;

  constructor(
    readonly version: 1 | 2 | null,
    readonly owner: string,
    readonly reason: string,
  ) {}

  async create(replicaId: string): Promise<ReplicaCgroup> {
    throw new Error(
      `cannot create the cgroup of replica ${replicaId}: limits are not enforced here (${this.reason})`,
    );
  }

  warm(): void {}

  async reapLeftovers(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {}
}

class KernelCgroups implements Cgroups {
  readonly enforced = true;
  readonly reason = null;
  private closed = false;

  constructor(private readonly ctx: Context) {}

  get version(): 1 | 2 {
    return this.ctx.layout.version;
  }

  get owner(): string {
    return this.ctx.owner;
  }

  async create(replicaId: string, limits: CgroupLimits): Promise<ReplicaCgroup> {
    const fail = (why: string) => new Error(`cannot create the cgroup of replica ${replicaId}: ${why}`);
    if (this.closed) throw fail("cgroups are closed");
    if (!SAFE_NAME.test(replicaId)) throw fail("the replica ID is not a plain name");
    let values: LimitValues;
    try {
      values = limitValues(limits);
    } catch (err) {
      throw fail(message(err));
    }
    const { ctx } = this;
    const dirs = ctx.layout.hierarchies.map((h) => join(ctx.ownerDir(h), replicaId));
    const made = new Set<string>();
    try {
      await ctx.ensureOwnerGroups();
      // The hierarchies side by side: a replica's start waits for the slowest, not for their sum.
      const results = await Promise.allSettled(
        ctx.layout.hierarchies.map(async (h, i) => {
          const dir = dirs[i] as string;
          await step("mkdir", dir, () => ctx.fs.mkdir(dir));
          made.add(dir);
          await ctx.writeLimits(h, dir, values);
        }),
      );
      const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed) throw failed.reason;
    } catch (err) {
      for (const dir of dirs.filter((d) => made.has(d)).reverse()) await ctx.rmdir(dir).catch(() => {});
      throw fail(message(err));
    }
    const memory = ctx.layout.hierarchies.findIndex((h) => h.controllers.includes("memory"));
    return new ReplicaGroup(ctx, replicaId, dirs, dirs[memory]!);
  }

  private warming = false;

  warm(): void {
    const { self } = this.ctx.layout;
    const h = this.ctx.layout.hierarchies[0];
    if (this.closed || this.warming || !self || !h) return;
    let now: string | undefined;
    try {
      const lines = parseSelfCgroup(readFileSync("/proc/self/cgroup", "utf8"));
      now = (
        self.controller === null
          ? lines.find((l) => l.controllers.length === 0)
          : lines.find((l) => l.controllers.includes(self.controller as string))
      )?.path;
    } catch {
      return;
    }
    // Only into the cgroup Hangar is in now (v2: its leaf, once it moved there); moved elsewhere since
    // it started, it is not moved back.
    let file: string;
    if (now === self.path) file = join(h.ownDir, "cgroup.procs");
    else if (this.ctx.v2 && now === `${self.path === "/" ? "" : self.path}/${LEAF}`)
      file = join(h.ownDir, LEAF, "cgroup.procs");
    else return;
    this.warming = true;
    this.ctx.fs
      .writeFile(file, String(process.pid))
      .catch(() => {})
      .finally(() => {
        this.warming = false;
      });
  }

  async reapLeftovers(): Promise<number> {
    const { ctx } = this;
    const dead = new Set<string>();
    for (const h of ctx.layout.hierarchies) {
      const dir = join(h.ownDir, GROUPS_DIR);
      const names = await ctx.fs.subdirs(dir).catch((err: unknown) => {
        if (codeOf(err) === "ENOENT") return [];
        throw new StepError("list", dir, codeOf(err));
      });
      for (const name of names) if (name !== ctx.owner && !ctx.isAlive(name)) dead.add(name);
    }
    let killed = 0;
    const errors: string[] = [];
    for (const owner of dead) {
      try {
        killed += await ctx.destroy(ctx.layout.hierarchies.map((h) => join(h.ownDir, GROUPS_DIR, owner)));
      } catch (err) {
        errors.push(message(err));
      }
    }
    if (errors.length > 0) {
      throw new Error(`killed ${killed} leftover processes, but some groups remain: ${errors.join("; ")}`);
    }
    return killed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { ctx } = this;
    // From the directories, not from memory: whatever is under this owner is this process's.
    await ctx.destroy(ctx.layout.hierarchies.map((h) => ctx.ownerDir(h)));
    for (const h of ctx.layout.hierarchies) {
      // The shared `hangar` goes when no other Hangar process has groups in it.
      await ctx.fs.rmdir(join(h.ownDir, GROUPS_DIR)).catch(() => {});
    }
  }
}

/** Why a probe failed, in one sentence. */
function describe(layout: Layout, err: unknown): string {
  if (!(err instanceof StepError)) return `cgroup v${layout.version} is not usable: ${message(err)}`;
  // The hierarchy whose file failed: the one whose directory holds the path (the deepest, should two nest).
  const h =
    layout.hierarchies
      .filter((x) => err.path === x.ownDir || err.path.startsWith(`${x.ownDir}/`))
      .sort((a, b) => b.ownDir.length - a.ownDir.length)[0] ?? layout.hierarchies[0]!;
  const where = `(${err.op} ${err.path})`;
  if (layout.version === 2) {
    if (err.code === "EBUSY" && err.path === join(h.ownDir, "cgroup.subtree_control")) {
      return (
        `cgroup v2 controllers cannot be enabled below Hangar's own cgroup ${h.ownDir}: EBUSY ` +
        `(it still holds processes after moving them into ${join(h.ownDir, LEAF)}, and outside the root ` +
        "cgroup v2 lets only a group without processes hand controllers to its children)"
      );
    }
    return `cgroup v2 not writable: ${err.code} ${where}`;
  }
  return `cgroup v1 ${h.controllers.join(",")} controller not writable: ${err.code} ${where}`;
}

/**
 * Finds the cgroup hierarchies and proves them: a probe group is made in each with limits written,
 * then removed. Never throws: a machine without usable cgroups answers enforced=false and why.
 */
export async function openCgroups(options: CgroupsOptions = {}): Promise<Cgroups> {
  const fs = options.fs ?? nodeCgroupFs;
  const owner = options.owner ?? ownerOf(process.pid);
  if (owner === null) return new DisabledCgroups(null, "", "no /proc to name this process by");
  if (!SAFE_NAME.test(owner)) throw new Error(`the cgroup owner must be a plain name: ${owner}`);
  const found = await discover(options, fs);
  if (!("layout" in found)) return new DisabledCgroups(found.version, owner, found.reason);
  const { layout } = found;
  const ctx = new Context(
    layout,
    owner,
    fs,
    options.kill ?? defaultKill,
    options.isAlive ?? ownerIsAlive,
    options.settleMs ?? 5_000,
  );
  const probes: string[] = [];
  let reason: string | null = null;
  try {
    await ctx.ensureOwnerGroups();
    for (const h of layout.hierarchies) {
      const dir = join(ctx.ownerDir(h), PROBE);
      await step("mkdir", dir, () => fs.mkdir(dir));
      probes.push(dir);
      await ctx.writeLimits(h, dir, PROBE_LIMITS);
    }
  } catch (err) {
    reason = describe(layout, err);
  }
  for (const dir of probes.reverse()) await ctx.rmdir(dir).catch(() => {});
  if (reason === null) return new KernelCgroups(ctx);
  // Leave nothing behind: only this process's empty group and, when empty, the shared one.
  for (const h of layout.hierarchies) {
    await fs.rmdir(ctx.ownerDir(h)).catch(() => {});
    await fs.rmdir(join(h.ownDir, GROUPS_DIR)).catch(() => {});
    // A leaf no process reached (one that holds any stays, with them).
    if (layout.version === 2) await fs.rmdir(join(h.ownDir, LEAF)).catch(() => {});
  }
  return new DisabledCgroups(layout.version, owner, reason);
}
