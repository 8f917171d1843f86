/**
 * Replica cgroups (src/runtime/cgroups.ts) against a fake cgroupfs in a temp dir, for the v1 and the
 * v2 layouts: where groups go, what is written, how failures read, which leftovers are reaped.
 * The kernel itself is tested in cgroups-kernel.test.ts.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type CgroupFs,
  type CgroupsOptions,
  JOIN_FAILED_EXIT_CODE,
  joinCommand,
  nodeCgroupFs,
  oomKills,
  openCgroups,
  parseMountinfo,
  parseSelfCgroup,
} from "../../src/runtime/cgroups.ts";
import { ownerIsAlive, ownerOf } from "../../src/runtime/process-identity.ts";

const errno = (code: string, what: string) => Object.assign(new Error(`${code}: ${what}`), { code });

/**
 * A cgroupfs as the kernel keeps it, on a real directory: mkdir makes a group's control files, rmdir
 * refuses a group with processes or children, control files cannot be created by writing, writes to
 * cgroup.subtree_control enable controllers (v2: EBUSY in a group below the top that holds processes),
 * a PID written to cgroup.procs moves there from its group, cgroup.kill and kill() empty groups.
 */
class FakeCgroupFs implements CgroupFs {
  readonly writes: [string, string][] = [];
  readonly killed: number[] = [];
  /** `op path` → errno code. */
  readonly failures = new Map<string, string>();

  constructor(
    private readonly top: string,
    /** The control files (with contents) of a new group in `dir`. */
    private readonly filesFor: (dir: string) => Record<string, string>,
    /** v2's rule that a group handing controllers down holds no process. */
    private readonly v2 = false,
  ) {}

  private check(op: string, path: string): void {
    const code = this.failures.get(`${op} ${path}`);
    if (code) throw errno(code, `${op} ${path}`);
  }

  /** Makes a group, and the missing ones above it, as the kernel would have. */
  async group(dir: string): Promise<void> {
    if (dir !== this.top && !(await this.exists(dirname(dir)))) await this.group(dirname(dir));
    await fsp.mkdir(dir, { recursive: true });
    for (const [file, content] of Object.entries(this.filesFor(dir))) {
      await fsp.writeFile(join(dir, file), content, { flag: "wx" }).catch(() => {});
    }
  }

  async put(dir: string, pids: number[]): Promise<void> {
    await fsp.writeFile(join(dir, "cgroup.procs"), pids.map((p) => `${p}\n`).join(""));
  }

  async read(path: string): Promise<string> {
    return fsp.readFile(path, "utf8");
  }

  readFile(path: string): Promise<string> {
    this.check("read", path);
    return nodeCgroupFs.readFile(path);
  }

  async writeFile(path: string, data: string): Promise<void> {
    this.check("write", path);
    if (!(await this.exists(path))) throw errno("ENOENT", `write ${path}`);
    this.writes.push([path, data]);
    const file = basename(path);
    if (file === "cgroup.subtree_control" && this.v2 && dirname(path) !== this.top) {
      if ((await this.read(join(dirname(path), "cgroup.procs"))).trim())
        throw errno("EBUSY", `write ${path}`);
    }
    if (file === "cgroup.procs") {
      const pid = Number(data.trim());
      for (const dir of await this.tree(this.top)) {
        const procs = join(dir, "cgroup.procs");
        if (!existsSync(procs)) continue;
        const held = (await this.read(procs)).split("\n").filter(Boolean).map(Number);
        if (held.includes(pid))
          await this.put(
            dir,
            held.filter((p) => p !== pid),
          );
      }
      const here = (await this.read(path)).split("\n").filter(Boolean).map(Number);
      await this.put(dirname(path), [...here, pid]);
    } else if (file === "cgroup.subtree_control") {
      const enabled = new Set((await this.read(path)).split(/\s+/).filter(Boolean));
      for (const word of data.split(/\s+/).filter(Boolean)) {
        if (word.startsWith("+")) enabled.add(word.slice(1));
        else enabled.delete(word.slice(1));
      }
      await fsp.writeFile(path, [...enabled].join(" "));
    } else if (file === "cgroup.kill") {
      for (const dir of await this.tree(dirname(path))) await this.put(dir, []);
    } else {
      await fsp.writeFile(path, data);
    }
  }

  async mkdir(path: string): Promise<void> {
    this.check("mkdir", path);
    await fsp.mkdir(path);
    await this.group(path);
  }

  async rmdir(path: string): Promise<void> {
    this.check("rmdir", path);
    if (!(await this.exists(path))) throw errno("ENOENT", `rmdir ${path}`);
    const procs = await this.read(join(path, "cgroup.procs")).catch(() => "");
    if (procs.trim() || (await this.subdirs(path)).length > 0) throw errno("EBUSY", `rmdir ${path}`);
    await fsp.rm(path, { recursive: true });
  }

  subdirs(path: string): Promise<string[]> {
    return nodeCgroupFs.subdirs(path);
  }

  exists(path: string): Promise<boolean> {
    return nodeCgroupFs.exists(path);
  }

  /** Every group at or below dir. */
  async tree(dir: string): Promise<string[]> {
    const out = [dir];
    for (const name of await this.subdirs(dir)) out.push(...(await this.tree(join(dir, name))));
    return out;
  }

  /** SIGKILL: the process leaves every group (at once, as the kernel's callers see it). */
  kill = (pid: number): void => {
    this.killed.push(pid);
    const visit = (dir: string) => {
      const procs = join(dir, "cgroup.procs");
      if (existsSync(procs)) {
        const left = readFileSync(procs, "utf8").split("\n").filter(Boolean).map(Number);
        writeFileSync(
          procs,
          left
            .filter((p) => p !== pid)
            .map((p) => `${p}\n`)
            .join(""),
        );
      }
      for (const d of readdirSync(dir, { withFileTypes: true }))
        if (d.isDirectory()) visit(join(dir, d.name));
    };
    visit(this.top);
  };

  valueWritten(path: string): string | undefined {
    return this.writes.filter(([p]) => p === path).at(-1)?.[1];
  }
}

let top: string;

beforeEach(async () => {
  top = await fsp.mkdtemp(join(tmpdir(), "hangar-cgroups-"));
});

afterEach(async () => {
  await fsp.rm(top, { recursive: true, force: true });
});

const OWNER = "p100-s5000-n4026531836";
const LIMITS = { cpu: 0.5, memoryMb: 64, pids: 32 };
const MB64 = String(64 * 1024 * 1024);

/** openCgroups on the fake tree, as the Hangar process OWNER whose /proc/self/cgroup is `self`. */
function openOnFake(fake: FakeCgroupFs, self: string, options: Partial<CgroupsOptions> = {}) {
  return openCgroups({ root: top, selfCgroup: self, owner: OWNER, fs: fake, kill: fake.kill, ...options });
}

// ---------------------------------------------------------------------------------------------

describe("cgroup v1", () => {
  const SELF = [
    "9:name=systemd:/",
    "4:pids:/",
    "3:memory:/session/a",
    "2:cpu,cpuacct:/",
    "1:cpuset:/",
    "0::/", // the hybrid layout's empty v2 tree: ignored while v1 has the controllers
  ].join("\n");

  /** This machine's kind of tree: a memory hierarchy where Hangar is below the root, joint cpu,cpuacct. */
  async function v1Tree(options: { memsw?: boolean } = {}) {
    const memsw = options.memsw ?? true;
    const fake = new FakeCgroupFs(top, (dir) => {
      const hierarchy = relative(top, dir).split("/")[0];
      const files: Record<string, string> = { "cgroup.procs": "", tasks: "" };
      if (hierarchy === "memory") {
        files["memory.limit_in_bytes"] = "9223372036854771712";
        if (memsw) files["memory.memsw.limit_in_bytes"] = "9223372036854771712";
        files["memory.oom_control"] = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
      }
      if (hierarchy === "cpu,cpuacct") {
        files["cpu.cfs_period_us"] = "100000";
        files["cpu.cfs_quota_us"] = "-1";
      }
      if (hierarchy === "pids") files["pids.max"] = "max";
      return files;
    });
    for (const dir of ["memory", "memory/session", "memory/session/a", "cpu,cpuacct", "pids", "unified"]) {
      await fake.group(join(top, dir));
    }
    const dirs = {
      memory: join(top, "memory/session/a/hangar"),
      cpu: join(top, "cpu,cpuacct/hangar"),
      pids: join(top, "pids/hangar"),
    };
    return { fake, dirs };
  }

  it("makes hangar/<owner>/<replica> under Hangar's own cgroup in each hierarchy, with the limits", async () => {
    const { fake, dirs } = await v1Tree();
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups).toMatchObject({ enforced: true, reason: null, version: 1, owner: OWNER });
    // The probe proved every hierarchy writable and is gone.
    for (const dir of Object.values(dirs)) {
      expect(await fake.subdirs(dir)).toEqual([OWNER]);
      expect(await fake.subdirs(join(dir, OWNER))).toEqual([]);
    }

    const group = await cgroups.create("rep_a", LIMITS);
    const memory = join(dirs.memory, OWNER, "rep_a");
    const cpu = join(dirs.cpu, OWNER, "rep_a");
    const pids = join(dirs.pids, OWNER, "rep_a");
    expect(group.procsFiles).toEqual([memory, cpu, pids].map((d) => join(d, "cgroup.procs")));
    expect(await fake.read(join(memory, "memory.limit_in_bytes"))).toBe(MB64);
    expect(await fake.read(join(memory, "memory.memsw.limit_in_bytes"))).toBe(MB64);
    expect(await fake.read(join(cpu, "cpu.cfs_period_us"))).toBe("100000");
    expect(await fake.read(join(cpu, "cpu.cfs_quota_us"))).toBe("50000");
    expect(await fake.read(join(pids, "pids.max"))).toBe("32");
    // memsw may never be below the plain limit: the plain limit is written first.
    const order = fake.writes.map(([p]) => p).filter((p) => p.startsWith(memory));
    expect(order).toEqual([
      join(memory, "memory.limit_in_bytes"),
      join(memory, "memory.memsw.limit_in_bytes"),
    ]);
    // Nothing is written outside Hangar's own groups (not Hangar's own cgroup, not a root).
    for (const [path] of fake.writes) expect(path).toMatch(new RegExp(`/hangar/${OWNER}/`));
    await cgroups.close();
  });

  it("leaves memsw alone where the kernel has no swap accounting", async () => {
    const { fake, dirs } = await v1Tree({ memsw: false });
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups.enforced).toBe(true);
    await cgroups.create("rep_a", LIMITS);
    expect(await fake.read(join(dirs.memory, OWNER, "rep_a", "memory.limit_in_bytes"))).toBe(MB64);
    expect(fake.writes.some(([p]) => p.includes("memsw"))).toBe(false);
    await cgroups.close();
  });

  it("finds the hierarchies through mountinfo, inside a mount whose root is not the hierarchy's", async () => {
    const { fake } = await v1Tree();
    await fake.group(join(top, "memory/a"));
    // memory is mounted from /session (as in a container): Hangar's /session/a is <mount>/a.
    const mountinfo = [
      `31 23 0:28 / ${top} rw,relatime - tmpfs tmpfs rw,mode=755`,
      `32 31 0:29 / ${top}/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct`,
      `35 31 0:32 /session ${top}/memory rw,relatime - cgroup cgroup rw,memory`,
      `39 31 0:36 / ${top}/pids rw,relatime - cgroup cgroup rw,pids`,
      `41 31 0:38 / ${top}/unified rw,relatime - cgroup2 cgroup2 rw`,
    ].join("\n");
    const cgroups = await openCgroups({
      mountinfo,
      selfCgroup: SELF,
      owner: OWNER,
      fs: fake,
      kill: fake.kill,
    });
    expect(cgroups.enforced).toBe(true);
    const group = await cgroups.create("rep_a", LIMITS);
    expect(group.procsFiles).toEqual([
      join(top, "memory/a/hangar", OWNER, "rep_a/cgroup.procs"),
      join(top, "cpu,cpuacct/hangar", OWNER, "rep_a/cgroup.procs"),
      join(top, "pids/hangar", OWNER, "rep_a/cgroup.procs"),
    ]);
    await cgroups.close();
  });

  it("is not enforced, and says why, when a controller is not writable; create() throws; nothing is left", async () => {
    const { fake, dirs } = await v1Tree();
    fake.failures.set(`mkdir ${dirs.pids}`, "EACCES");
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups.enforced).toBe(false);
    expect(cgroups.version).toBe(1);
    expect(cgroups.reason).toBe(`cgroup v1 pids controller not writable: EACCES (mkdir ${dirs.pids})`);
    await expect(cgroups.create("rep_a", LIMITS)).rejects.toThrow(
      /cannot create the cgroup of replica rep_a: limits are not enforced here \(cgroup v1 pids controller not writable: EACCES/,
    );
    expect(await fake.exists(dirs.memory)).toBe(false);
    expect(await fake.exists(dirs.cpu)).toBe(false);
  });

  it("names the limit file that cannot be written (read-only cgroupfs)", async () => {
    const { fake, dirs } = await v1Tree();
    fake.failures.set(`write ${join(dirs.cpu, OWNER, "probe", "cpu.cfs_quota_us")}`, "EROFS");
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups.reason).toMatch(
      /^cgroup v1 cpu controller not writable: EROFS \(write "100000" to .*cpu.cfs_quota_us\)$/,
    );
  });

  it("is not enforced when a controller has no v1 hierarchy", async () => {
    const { fake } = await v1Tree();
    const self = SELF.split("\n")
      .filter((l) => !l.includes("pids"))
      .join("\n");
    const cgroups = await openCgroups({ root: top, selfCgroup: self, owner: OWNER, fs: fake });
    expect(cgroups).toMatchObject({
      enforced: false,
      reason: "the cgroup v1 pids controller is not mounted",
    });
  });

  it("reaps only the groups of dead owners, and counts each process once", async () => {
    const { fake, dirs } = await v1Tree();
    const dead = "p200-s1-n4026531836";
    const alive = "p300-s1-n4026531836";
    const foreign = "someone-else";
    for (const [owner, pids] of [
      [dead, [101, 102]],
      [alive, [201]],
      [foreign, [301]],
    ] as const) {
      for (const dir of Object.values(dirs)) {
        await fake.group(join(dir, owner, "rep_x"));
        await fake.put(join(dir, owner, "rep_x"), [...pids]);
      }
    }
    const asked: string[] = [];
    const isAlive = (owner: string) => {
      asked.push(owner);
      return owner !== dead;
    };
    const cgroups = await openCgroups({
      root: top,
      selfCgroup: SELF,
      owner: OWNER,
      fs: fake,
      kill: fake.kill,
      isAlive,
    });
    expect(await cgroups.reapLeftovers()).toBe(2);
    expect([...new Set(fake.killed)].sort()).toEqual([101, 102]);
    for (const dir of Object.values(dirs)) {
      expect((await fake.subdirs(dir)).sort()).toEqual([OWNER, alive, foreign].sort());
      expect(await fake.read(join(dir, alive, "rep_x", "cgroup.procs"))).toBe("201\n");
    }
    expect(asked).not.toContain(OWNER);
    await cgroups.close();
  });

  it("kills, removes, and reports an OOM kill even after removal", async () => {
    const { fake, dirs } = await v1Tree();
    const cgroups = await openOnFake(fake, SELF, { settleMs: 200 });
    const group = await cgroups.create("rep_a", LIMITS);
    const memory = join(dirs.memory, OWNER, "rep_a");
    for (const file of group.procsFiles) await fake.put(dirname(file), [7, 8]);
    expect(await group.pids()).toEqual([7, 8]);
    expect(await group.oomKilled()).toBe(false);
    await fsp.writeFile(join(memory, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
    expect(await group.oomKilled()).toBe(true);

    await expect(group.remove()).rejects.toThrow(/rmdir .*rep_a: EBUSY/);
    await group.killAll();
    expect(await group.pids()).toEqual([]);
    await group.remove();
    await group.remove();
    expect(await fake.exists(memory)).toBe(false);
    expect(await group.oomKilled()).toBe(true);
    await cgroups.close();
  });

  it("close() kills what is left and removes its groups and the emptied shared one", async () => {
    const { fake, dirs } = await v1Tree();
    const cgroups = await openOnFake(fake, SELF);
    const group = await cgroups.create("rep_a", LIMITS);
    await fake.put(dirname(group.procsFiles[0]!), [9]);
    await cgroups.close();
    expect(fake.killed).toContain(9);
    for (const dir of Object.values(dirs)) expect(await fake.exists(dir)).toBe(false);
    await expect(cgroups.create("rep_b", LIMITS)).rejects.toThrow(/closed/);
  });

  it("keeps the shared group while another Hangar process has groups in it", async () => {
    const { fake, dirs } = await v1Tree();
    const other = "p300-s1-n4026531836";
    for (const dir of Object.values(dirs)) await fake.group(join(dir, other));
    const cgroups = await openOnFake(fake, SELF);
    await cgroups.close();
    for (const dir of Object.values(dirs)) expect(await fake.subdirs(dir)).toEqual([other]);
  });

  it("refuses bad limits and replica IDs that are not plain names, and cleans up a half-made group", async () => {
    const { fake, dirs } = await v1Tree();
    const cgroups = await openOnFake(fake, SELF);
    await expect(cgroups.create("rep_a", { ...LIMITS, cpu: 0.001 })).rejects.toThrow(
      /cpu must be at least 0.01/,
    );
    await expect(cgroups.create("rep_a", { ...LIMITS, memoryMb: 0 })).rejects.toThrow(/memoryMb/);
    await expect(cgroups.create("rep_a", { ...LIMITS, pids: 0 })).rejects.toThrow(/pids/);
    await expect(cgroups.create("../x", LIMITS)).rejects.toThrow(/not a plain name/);
    fake.failures.set(`write ${join(dirs.pids, OWNER, "rep_b", "pids.max")}`, "EINVAL");
    await expect(cgroups.create("rep_b", LIMITS)).rejects.toThrow(
      `cannot create the cgroup of replica rep_b: write "32" to ${join(dirs.pids, OWNER, "rep_b", "pids.max")}: EINVAL`,
    );
    for (const dir of Object.values(dirs)) expect(await fake.subdirs(join(dir, OWNER))).toEqual([]);
    await cgroups.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe("cgroup v2", () => {
  async function v2Tree(options: { kill?: boolean; controllers?: string } = {}) {
    const fake = new FakeCgroupFs(
      top,
      (dir) => ({
        "cgroup.procs": "",
        "cgroup.controllers": options.controllers ?? "cpuset cpu io memory pids",
        "cgroup.subtree_control": "",
        "memory.max": "max",
        "memory.swap.max": "max",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
        "cpu.max": "max 100000",
        "pids.max": "max",
        ...(options.kill === false || dir === top ? {} : { "cgroup.kill": "" }),
      }),
      true,
    );
    await fake.group(top);
    await fake.group(join(top, "system.slice/hangar.service"));
    return fake;
  }
  const SELF = "0::/system.slice/hangar.service\n";

  it("enables memory, cpu and pids down to the replica's group and writes the v2 limits", async () => {
    const fake = await v2Tree();
    const own = join(top, "system.slice/hangar.service");
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups).toMatchObject({ enforced: true, version: 2 });
    const group = await cgroups.create("rep_a", { cpu: 0.2, memoryMb: 64, pids: 16 });
    const dir = join(own, "hangar", OWNER, "rep_a");
    expect(group.procsFiles).toEqual([join(dir, "cgroup.procs")]);
    for (const parent of [own, join(own, "hangar"), join(own, "hangar", OWNER)]) {
      expect((await fake.read(join(parent, "cgroup.subtree_control"))).split(" ").sort()).toEqual([
        "cpu",
        "memory",
        "pids",
      ]);
    }
    expect(fake.valueWritten(join(own, "cgroup.subtree_control"))).toBe("+memory +cpu +pids");
    expect(await fake.read(join(dir, "memory.max"))).toBe(MB64);
    expect(await fake.read(join(dir, "memory.swap.max"))).toBe("0");
    expect(await fake.read(join(dir, "cpu.max"))).toBe("20000 100000");
    expect(await fake.read(join(dir, "pids.max"))).toBe("16");
    await cgroups.close();
    expect(await fake.exists(join(own, "hangar"))).toBe(false);
  });

  it("enables only the controllers not yet enabled", async () => {
    const fake = await v2Tree();
    const own = join(top, "system.slice/hangar.service");
    await fsp.writeFile(join(own, "cgroup.subtree_control"), "memory cpu");
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups.enforced).toBe(true);
    expect(fake.valueWritten(join(own, "cgroup.subtree_control"))).toBe("+pids");
    await cgroups.close();
  });

  it("puts the groups at the root when Hangar's own cgroup is the root", async () => {
    const fake = await v2Tree();
    const cgroups = await openCgroups({
      root: top,
      selfCgroup: "0::/\n",
      owner: OWNER,
      fs: fake,
      kill: fake.kill,
    });
    const group = await cgroups.create("rep_a", LIMITS);
    expect(group.procsFiles).toEqual([join(top, "hangar", OWNER, "rep_a", "cgroup.procs")]);
    await cgroups.close();
  });

  it("moves the processes of Hangar's own cgroup into its leaf, then hands the controllers down", async () => {
    const fake = await v2Tree();
    const own = join(top, "system.slice/hangar.service");
    // Hangar and what started it (npm, a shell), as systemd puts a service's processes.
    await fake.put(own, [41, 42, 43]);
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups).toMatchObject({ enforced: true, version: 2 });
    expect(await fake.read(join(own, "cgroup.procs"))).toBe("");
    expect(await fake.read(join(own, "leaf", "cgroup.procs"))).toBe("41\n42\n43\n");
    const group = await cgroups.create("rep_a", LIMITS);
    expect(group.procsFiles).toEqual([join(own, "hangar", OWNER, "rep_a", "cgroup.procs")]);
    await cgroups.close();
    // The leaf stays, with its processes; Hangar's own groups go.
    expect(await fake.subdirs(own)).toEqual(["leaf"]);
  });

  it("puts its groups beside the leaf when started from a process in it", async () => {
    const fake = await v2Tree();
    const own = join(top, "system.slice/hangar.service");
    await fake.group(join(own, "leaf"));
    await fake.put(join(own, "leaf"), [41, 50]);
    const cgroups = await openOnFake(fake, "0::/system.slice/hangar.service/leaf\n");
    expect(cgroups.enforced).toBe(true);
    const group = await cgroups.create("rep_a", LIMITS);
    expect(group.procsFiles).toEqual([join(own, "hangar", OWNER, "rep_a", "cgroup.procs")]);
    await cgroups.close();
  });

  it("is not enforced when the processes of its own cgroup cannot be moved, and says why", async () => {
    const fake = await v2Tree();
    const own = join(top, "system.slice/hangar.service");
    await fake.put(own, [41]);
    fake.failures.set(`write ${join(own, "leaf", "cgroup.procs")}`, "EACCES");
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups.enforced).toBe(false);
    expect(cgroups.reason).toBe(
      `cgroup v2 not writable: EACCES (write "41" to ${join(own, "leaf", "cgroup.procs")})`,
    );
    // Nothing left behind but the process where it was.
    expect(await fake.subdirs(own)).toEqual([]);
    expect(await fake.read(join(own, "cgroup.procs"))).toBe("41\n");
  });

  it("is not enforced when its own cgroup stays busy (EBUSY), and says so", async () => {
    const fake = await v2Tree();
    const own = join(top, "system.slice/hangar.service");
    fake.failures.set(`write ${join(own, "cgroup.subtree_control")}`, "EBUSY");
    const cgroups = await openOnFake(fake, SELF);
    expect(cgroups.enforced).toBe(false);
    expect(cgroups.reason).toMatch(
      new RegExp(
        `^cgroup v2 controllers cannot be enabled below Hangar's own cgroup ${own}: EBUSY \\(it still holds processes`,
      ),
    );
    expect(await fake.exists(join(own, "hangar"))).toBe(false);
  });

  it("is not enforced when a controller is not delegated to Hangar's cgroup", async () => {
    const fake = await v2Tree({ controllers: "cpu io memory" });
    const cgroups = await openCgroups({ root: top, selfCgroup: SELF, owner: OWNER, fs: fake });
    expect(cgroups.reason).toBe(
      `the cgroup v2 pids controller is not available in Hangar's cgroup ${join(top, "system.slice/hangar.service")}`,
    );
  });

  it("finds a v2 tree mounted at <root>/unified", async () => {
    const fake = await v2Tree();
    await fsp.rename(join(top, "system.slice"), join(top, "x"));
    await fake.group(join(top, "unified"));
    await fake.group(join(top, "unified/system.slice/hangar.service"));
    await fsp.rm(join(top, "cgroup.controllers"));
    const cgroups = await openOnFake(fake, SELF);
    const group = await cgroups.create("rep_a", LIMITS);
    expect(group.procsFiles[0]).toBe(
      join(top, "unified/system.slice/hangar.service/hangar", OWNER, "rep_a/cgroup.procs"),
    );
    await cgroups.close();
  });

  it("kills through cgroup.kill when there is one, else process by process", async () => {
    for (const hasKill of [true, false]) {
      const fake = await v2Tree({ kill: hasKill });
      const cgroups = await openOnFake(fake, SELF);
      const group = await cgroups.create("rep_a", LIMITS);
      const dir = dirname(group.procsFiles[0]!);
      await fake.put(dir, [41, 42]);
      await group.killAll();
      expect(await group.pids()).toEqual([]);
      expect(fake.valueWritten(join(dir, "cgroup.kill"))).toBe(hasKill ? "1" : undefined);
      expect(fake.killed).toEqual(hasKill ? [] : [41, 42]);
      await group.remove();
      await cgroups.close();
      await fsp.rm(top, { recursive: true });
      await fsp.mkdir(top);
    }
  });

  it("reads the OOM kill count from memory.events", async () => {
    const fake = await v2Tree();
    const cgroups = await openOnFake(fake, SELF);
    const group = await cgroups.create("rep_a", LIMITS);
    expect(await group.oomKilled()).toBe(false);
    await fsp.writeFile(
      join(dirname(group.procsFiles[0]!), "memory.events"),
      "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n",
    );
    expect(await group.oomKilled()).toBe(true);
    await cgroups.close();
  });

  it("reaps dead owners' groups through cgroup.kill", async () => {
    const fake = await v2Tree();
    const own = join(top, "system.slice/hangar.service");
    const dead = "p200-s1-n4026531836";
    await fake.group(join(own, "hangar", dead, "rep_x"));
    await fake.put(join(own, "hangar", dead, "rep_x"), [55]);
    const cgroups = await openOnFake(fake, SELF, { isAlive: (o) => o !== dead });
    expect(await cgroups.reapLeftovers()).toBe(1);
    expect(await fake.subdirs(join(own, "hangar"))).toEqual([OWNER]);
    await cgroups.close();
  });
});

// ---------------------------------------------------------------------------------------------

describe("parsing and naming", () => {
  it("parses /proc/self/cgroup, paths with colons included", () => {
    expect(parseSelfCgroup("4:memory:/a:b\n2:cpu,cpuacct:/\n0::/x\n")).toEqual([
      { controllers: ["memory"], path: "/a:b" },
      { controllers: ["cpu", "cpuacct"], path: "/" },
      { controllers: [], path: "/x" },
    ]);
  });

  it("parses the cgroup mounts of mountinfo, escaped mount points included", () => {
    const text = [
      "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
      "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct",
      "41 31 0:38 /x /mnt/my\\040cgroups rw,relatime - cgroup2 cgroup2 rw",
    ].join("\n");
    expect(parseMountinfo(text)).toEqual([
      {
        root: "/",
        mountPoint: "/sys/fs/cgroup/cpu,cpuacct",
        fstype: "cgroup",
        superOptions: ["rw", "cpu", "cpuacct"],
      },
      { root: "/x", mountPoint: "/mnt/my cgroups", fstype: "cgroup2", superOptions: ["rw"] },
    ]);
  });

  it("reads the oom_kill counter of v1 memory.oom_control and v2 memory.events", () => {
    expect(oomKills("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")).toBe(3);
    expect(oomKills("low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n")).toBe(0);
    expect(oomKills("oom_kill_disable 0\nunder_oom 0\n")).toBe(0); // kernels before 4.13
  });

  it("names this process by pid, start time and PID namespace; a reused pid or another namespace is not it", () => {
    const me = ownerOf(process.pid);
    expect(me).toMatch(new RegExp(`^p${process.pid}-s\\d+-n\\d+$`));
    expect(ownerIsAlive(me!)).toBe(true);
    const [, start, ns] = /-s(\d+)-n(\d+)$/.exec(me!)!;
    expect(ownerIsAlive(`p${process.pid}-s${Number(start) + 1}-n${ns}`)).toBe(false);
    expect(ownerIsAlive(`p99999999-s1-n${ns}`)).toBe(false);
    // Not judged, so never touched:
    expect(ownerIsAlive(`p99999999-s1-n${Number(ns) + 1}`)).toBe(true);
    expect(ownerIsAlive("not-an-owner")).toBe(true);
  });
});

describe("joinCommand", () => {
  const run = (file: string, args: string[]) =>
    new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn(file, args);
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (d: Buffer) => {
        stdout += d;
      });
      child.stderr.on("data", (d: Buffer) => {
        stderr += d;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stdout, stderr }));
    });

  it("writes the child's own PID into every file, then execs the command with its arguments untouched", async () => {
    // Names a shell would act on, were they spliced into its code.
    const files = [join(top, "a $(touch pwned) `x`.procs"), join(top, "b'; exit 3; '.procs")];
    for (const f of files) await fsp.writeFile(f, "");
    const [file, args] = joinCommand(files, "/bin/sh", ["-c", 'echo "$$ $1"', "sh", "$HOME *"]);
    const { code, stdout } = await run(file, args);
    expect(code).toBe(0);
    const [pid, arg] = stdout.trim().split(" ", 2);
    for (const f of files) expect((await fsp.readFile(f, "utf8")).trim()).toBe(pid);
    expect(stdout.trim()).toBe(`${pid} $HOME *`);
    expect(arg).toBe("$HOME");
    expect(await fsp.readdir(top)).not.toContain("pwned");
  });

  it("does not run the command when a PID cannot be written", async () => {
    const marker = join(top, "ran");
    const [file, args] = joinCommand([join(top, "missing-dir", "cgroup.procs")], "/bin/sh", [
      "-c",
      `touch "${marker}"`,
    ]);
    const { code, stderr } = await run(file, args);
    expect(code).toBe(JOIN_FAILED_EXIT_CODE);
    expect(stderr).toContain("hangar: cannot join the cgroup");
    expect(await fsp.readdir(top)).not.toContain("ran");
  });

  it("refuses relative procs paths", () => {
    expect(() => joinCommand(["cgroup.procs"], "/bin/true", [])).toThrow(/absolute/);
  });
});
