/**
 * The fence (API.md section 9), made with bubblewrap: each replica gets its
 * own mount, PID, IPC, UTS and network namespaces, a view of the machine in
 * which only the system's programs, its code (read-only) and Hangar's runner
 * file exist, and private tmpfs HOME and TMPDIR: nothing of the host it can
 * write. Its channel socket comes in as a descriptor. As root it also runs as
 * a user of its own (setpriv drops to a uid from HANGAR_SANDBOX_UID_BASE, with
 * no capabilities); not root,
 * bubblewrap maps Hangar's uid in a user namespace. slirp4netns gives the
 * private network a way out, with the host's loopback closed to it.
 */
import { spawnSync } from "node:child_process";
import { once } from "node:events";
import { accessSync, constants, existsSync, lstatSync, readlinkSync } from "node:fs";
import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReplicaSpec } from "./build.ts";
import { CHANNEL_FD } from "./replica-channel.ts";
import {
  hasSetpriv,
  type ReplicaLaunch,
  type ReplicaToLaunch,
  replicaEnvironment,
  type Sandbox,
} from "./sandbox.ts";
import { SlirpLauncher, type SlirpNetwork } from "./slirp.ts";
import { isDirectory, stageTree } from "./staging.ts";

/** Paths as a fenced replica sees them. */
const INSIDE = {
  code: "/code",
  runner: "/hangar/runner.mjs",
  home: "/home/replica",
  tmp: "/tmp",
} as const;

/** The devices a program may expect; bubblewrap's own `--dev` binds the same ones. */
const DEVICES = ["null", "zero", "full", "random", "urandom", "tty"];

/**
 * /proc, a /dev of the usual devices, and shared memory in /dev/shm (PyTorch's data loaders and Python's
 * multiprocessing expect it; it counts as the replica's memory): in the trial run and in every replica's
 * sandbox alike. Not bubblewrap's `--dev`: its devpts needs uid 0 in the user namespace, so without root
 * bubblewrap would then nest a second user namespace for the replica's own uid, and the network
 * namespace, owned by the first, would be out of slirp4netns's reach.
 */
const KERNEL_MOUNTS = [
  "--proc",
  "/proc",
  "--perms",
  "0755",
  "--dir",
  "/dev",
  ...DEVICES.filter((name) => existsSync(`/dev/${name}`)).flatMap((name) => [
    "--dev-bind",
    `/dev/${name}`,
    `/dev/${name}`,
  ]),
  ...["stdin", "stdout", "stderr"].flatMap((name, fd) => [
    "--symlink",
    `/proc/self/fd/${fd}`,
    `/dev/${name}`,
  ]),
  ...["--symlink", "/proc/self/fd", "/dev/fd"],
  ...["--perms", "1777", "--tmpfs", "/dev/shm"],
];

/** bubblewrap's info pipe: the fd after the channel socket, which every launcher passes on. */
const INFO_FD = CHANNEL_FD + 1;

const TUN_DEVICE = "/dev/net/tun";

/** A server command's port: private to the replica's network namespace, so any fixed port will do. */
const COMMAND_PORT = 8080;

/** How many uids one process cycles through from the base. */
const UID_RANGE = 65_536;

export interface FenceOptions {
  uidBase: number;
  /** Whether Hangar runs as root (then each replica gets a uid of its own). */
  root: boolean;
  /** slirp4netns, for the replicas' connections out; null: replicas have no network beyond themselves. */
  slirp4netns: string | null;
}

/** The system folders a replica sees, read-only: the programs and libraries, and what they read in /etc. */
function systemMounts(): string[] {
  const args = ["--ro-bind", "/usr", "/usr"];
  for (const top of ["/bin", "/sbin", "/lib", "/lib32", "/lib64"]) {
    if (!existsSync(top)) continue;
    // Merged /usr (Debian 12): these are links into /usr, and stay links.
    if (lstatSync(top).isSymbolicLink()) args.push("--symlink", readlinkSync(top), top);
    else args.push("--ro-bind", top, top);
  }
  for (const file of [
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/mime.types",
  ]) {
    if (existsSync(file)) args.push("--ro-bind", file, file);
  }
  // Node itself, when it is not a system program (nvm, a tarball in /opt).
  const nodeHome = path.dirname(path.dirname(process.execPath));
  if (!process.execPath.startsWith("/usr/")) args.push("--ro-bind", nodeHome, nodeHome);
  return args;
}

const NAMESPACES = [
  "--unshare-pid",
  "--unshare-ipc",
  "--unshare-uts",
  "--unshare-net",
  "--unshare-cgroup-try",
];

/**
 * Last of the mounts: the root bubblewrap builds is a tmpfs that, without root, belongs to Hangar's own
 * user, which a replica is inside its user namespace; read-only, it leaves the replica only its tmpfs
 * TMPDIR, HOME and /dev/shm to write to.
 */
const READ_ONLY_ROOT = ["--remount-ro", "/"];

function dropPrivileges(uid: number): string[] {
  return [
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
    "--no-new-privs",
    "--",
  ];
}

/**
 * Whether the fence can be put up here: bubblewrap runs a trial command with
 * every namespace and mount a replica gets. Null when it can, else why not.
 */
export function fenceProblem(options: FenceOptions): string | null {
  const version = spawnSync("bwrap", ["--version"], { encoding: "utf8" });
  if (version.error || version.status !== 0) return "bubblewrap (bwrap) is not installed";
  if (options.root && !hasSetpriv()) {
    return "setpriv (util-linux) is not installed";
  }
  const trial = spawnSync(
    "bwrap",
    [
      "--die-with-parent",
      ...NAMESPACES,
      ...(options.root ? [] : ["--unshare-user"]),
      "--perms",
      "0755",
      "--dir",
      "/etc",
      ...systemMounts(),
      ...KERNEL_MOUNTS,
      ...READ_ONLY_ROOT,
      "--",
      ...(options.root ? dropPrivileges(options.uidBase) : []),
      process.execPath,
      "-e",
      "",
    ],
    { encoding: "utf8", timeout: 30_000 },
  );
  if (trial.status === 0) return null;
  const said = (trial.stderr || trial.error?.message || `exit ${trial.status}`).trim().split("\n")[0];
  return `bubblewrap cannot make a sandbox here: ${said}`;
}

/** Why replicas will have no network out, or null when slirp4netns can give them one. */
function networkProblem(options: FenceOptions): string | null {
  if (!options.slirp4netns) return "slirp4netns is not installed: replicas cannot open connections out";
  try {
    // slirp4netns opens the TUN device as Hangar's user; Debian leaves it open to all (0666), some
    // containers to root only.
    accessSync(TUN_DEVICE, constants.R_OK | constants.W_OK);
    return null;
  } catch {
    return `slirp4netns cannot open ${TUN_DEVICE} as Hangar's user: replicas cannot open connections out`;
  }
}

export class Bubblewrap implements Sandbox {
  readonly state = "FENCED" as const;
  readonly reason: string | null;
  private nextUid = Math.floor(Math.random() * UID_RANGE);

  private readonly slirp: SlirpLauncher | null;

  constructor(private readonly options: FenceOptions) {
    this.reason = networkProblem(options);
    this.slirp = options.slirp4netns && this.reason === null ? new SlirpLauncher(options.slirp4netns) : null;
  }

  async prepare(replica: ReplicaToLaunch): Promise<ReplicaLaunch> {
    const { spec, dirs } = replica;
    const uid = this.options.root ? this.options.uidBase + (this.nextUid++ % UID_RANGE) : null;
    // The code root on the host: the deployment's folder is mounted at /code/<hash>, and a reload's code is
    // staged next to it.
    const codeRoot = path.join(dirs.root, "code");
    const etc = path.join(dirs.root, "etc");
    const replicaUid = uid ?? process.getuid?.() ?? 0;
    const files: [string, string][] = [
      ["passwd", `replica:x:${replicaUid}:${replicaUid}::${INSIDE.home}:/usr/sbin/nologin\n`],
      ["group", `replica:x:${replicaUid}:\n`],
      ["hosts", "127.0.0.1 localhost\n::1 localhost\n"],
      // slirp4netns answers DNS at 10.0.2.3.
      ["resolv.conf", "nameserver 10.0.2.3\n"],
    ];
    // Side by side: a replica's start waits for the longest chain of these, not for all of them in turn.
    await Promise.all([
      mkdir(path.join(codeRoot, spec.artifactHash), { recursive: true, mode: 0o755 }).then(() =>
        chmod(codeRoot, 0o755),
      ),
      mkdir(etc, { recursive: true }).then(() =>
        Promise.all(files.map(([name, text]) => writeFile(path.join(etc, name), text))),
      ),
    ]);

    const modelDir = `${INSIDE.code}/${spec.artifactHash}`;
    const port = spec.command ? COMMAND_PORT : null;
    const env = replicaEnvironment(replica, { home: INSIDE.home, tmp: INSIDE.tmp, modelDir }, port);
    const network = this.slirp;
    const args = [
      "--die-with-parent",
      "--new-session",
      ...NAMESPACES,
      ...(this.options.root ? [] : ["--unshare-user"]),
      // Folders bubblewrap would otherwise make owner-only, which a replica's own uid could not enter.
      ...["/etc", "/run", "/home", "/hangar"].flatMap((dir) => ["--perms", "0755", "--dir", dir]),
      ...systemMounts(),
      ...["passwd", "group", "hosts", "resolv.conf"].flatMap((name) => [
        "--ro-bind",
        path.join(etc, name),
        `/etc/${name}`,
      ]),
      ...KERNEL_MOUNTS,
      "--perms",
      "1777",
      "--tmpfs",
      INSIDE.tmp,
      "--perms",
      "1777",
      "--tmpfs",
      INSIDE.home,
      "--ro-bind",
      codeRoot,
      INSIDE.code,
      "--ro-bind",
      spec.dir,
      modelDir,
      "--ro-bind",
      replica.runner,
      INSIDE.runner,
      ...READ_ONLY_ROOT,
      "--chdir",
      modelDir,
      ...(network ? ["--info-fd", String(INFO_FD)] : []),
      "--",
      ...(uid !== null ? dropPrivileges(uid) : []),
      // bubblewrap sets PWD for --chdir after its own --unsetenv: the environment is section 9's only.
      "/usr/bin/env",
      "-u",
      "PWD",
      process.execPath,
      INSIDE.runner,
    ];

    let slirp: SlirpNetwork | null = null;
    return {
      file: "bwrap",
      args,
      env,
      cwd: "/",
      settings: {
        codeRoot: INSIDE.code,
        command: spec.command,
        port,
        // The runner's Node starts while the network goes up, rather than after.
        awaitNetwork: network !== null,
      },
      stage: async (next: ReplicaSpec) => {
        if (next.artifactHash === spec.artifactHash) return modelDir;
        // Hard links cost no space; stages stay until the replica ends, since the code in use (and the
        // replica's working directory) may be any of them.
        const target = path.join(codeRoot, next.artifactHash);
        if (!(await isDirectory(target))) await stageTree(next.dir, target);
        return `${INSIDE.code}/${next.artifactHash}`;
      },
      release: async () => {
        slirp?.stop();
      },
      explainExit: async () => null,
      extraPipes: network ? 1 : 0,
      attach: async (child) => {
        if (!network) return null;
        const info = child.stdio[INFO_FD] as Readable;
        try {
          const pid = await sandboxPid(info);
          await sandboxSetUp(pid);
          slirp = await network.start(pid);
          return null;
        } catch (error) {
          return `the replica has no network out: ${(error as Error).message}`;
        }
      },
    };
  }
}

/** How long bubblewrap may take to set a sandbox up before slirp4netns is started regardless. */
const SET_UP_MS = 5_000;

/**
 * Resolves once bubblewrap has set the sandbox `pid` up, or has ended. Its info fd speaks as soon as the
 * namespaces exist, before it puts up the sandbox's loopback; slirp4netns brings that same interface up,
 * and when it comes first bubblewrap's own setup fails ("loopback: Failed RTM_NEWADDR") and the replica
 * never runs. Seen about once in 150 starts on a busy machine. The sandbox's init forks the replica's
 * command only when all of its setup is done, so its first child is the sign; the command's Node starts
 * then too, so slirp4netns still comes up while it does.
 */
async function sandboxSetUp(pid: number): Promise<void> {
  const children = `/proc/${pid}/task/${pid}/children`;
  const deadline = Date.now() + SET_UP_MS;
  while (Date.now() < deadline) {
    const text = await readFile(children, "utf8").catch(() => null);
    // Null: the sandbox is gone (its setup failed, or it ended), or this kernel has no children file.
    if (text === null || text !== "") return;
    await sleep(1);
  }
}

/** bubblewrap writes {"child-pid": N, ...} on its info fd once the namespaces exist. */
async function sandboxPid(info: Readable): Promise<number> {
  let text = "";
  info.setEncoding("utf8");
  info.on("data", (chunk: string) => {
    text += chunk;
  });
  await once(info, "end");
  const pid = (JSON.parse(text) as { "child-pid"?: unknown })["child-pid"];
  if (typeof pid !== "number") throw new Error("bubblewrap did not say which process is the sandbox");
  return pid;
}
