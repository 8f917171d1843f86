/**
 * How a replica process is launched: the command line, environment and
 * runner settings for one replica, fenced (runtime/bubblewrap.ts) or not.
 * ProcessRuntime spawns what a Sandbox prepares and knows nothing of fences.
 */
import { spawnSync } from "node:child_process";
import type { ReplicaSpec } from "./build.ts";
import type { SandboxState } from "./isolation.ts";
import type { ReplicaProcess } from "./spawner.ts";
import type { ReplicaDirs } from "./workspace.ts";

/** What the runner reads from the first line of its stdin (model-server.mjs, "Settings"). */
export interface RunnerSettings {
  secret: string;
  /** Reloads load only from inside this folder (null: from anywhere). */
  codeRoot: string | null;
  command: string | null;
  port: number | null;
  /**
   * The runner loads nothing of the model until a second line on its stdin says that the replica's
   * network is settled (written once attach() has finished).
   */
  awaitNetwork: boolean;
}

export interface ReplicaLaunch {
  file: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** The runner's settings, with paths as the replica sees them. */
  settings: Omit<RunnerSettings, "secret">;
  /** Where a reload of this replica finds the code of `spec` (staged for it when fenced). */
  stage(spec: ReplicaSpec): Promise<string>;
  /** Removes what prepare() made beyond the replica's dirs, once the replica has exited. */
  release(): Promise<void>;
  /** Why the replica ended, when the launch knows better than its exit status (killed for memory). */
  explainExit(code: number | null, signal: NodeJS.Signals | null): Promise<string | null>;
  /**
   * Pipes beyond stdin, stdout, stderr and the channel socket that the process gets (fd 4 on), and
   * what to do with them once it is spawned; answers a line for the replica's log when something did
   * not work out.
   */
  extraPipes: number;
  attach(child: ReplicaProcess): Promise<string | null>;
}

export interface ReplicaToLaunch {
  id: string;
  spec: ReplicaSpec;
  dirs: ReplicaDirs;
  /** The runner script (model-server.mjs) on the host. */
  runner: string;
}

export interface Sandbox {
  readonly state: SandboxState;
  /** Why the fence is not up, when it is not. */
  readonly reason: string | null;
  prepare(replica: ReplicaToLaunch): Promise<ReplicaLaunch>;
}

/**
 * API.md section 9: the replica's whole environment. Nothing of Hangar's own
 * environment reaches it but PATH and LANG.
 */
export function replicaEnvironment(
  replica: ReplicaToLaunch,
  paths: { home: string; tmp: string; modelDir: string },
  port: number | null,
): Record<string, string> {
  const { spec } = replica;
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    LANG: process.env.LANG ?? "C.UTF-8",
    ...spec.env,
    HOME: paths.home,
    TMPDIR: paths.tmp,
    HANGAR_ENVIRONMENT: spec.environmentName ?? "",
    HANGAR_REPLICA_ID: replica.id,
    HANGAR_DEPLOYMENT_ID: spec.deploymentId,
    HANGAR_MODEL_DIR: paths.modelDir,
  };
  if (port !== null) env.PORT = String(port);
  if (!spec.command) env.HANGAR_MODEL_CONFIG = JSON.stringify(spec.config ?? {});
  return env;
}

/**
 * Puts an error listener on every pipe of a child Hangar spawned. A pipe whose other end goes away with
 * bytes unread errors (ECONNRESET): that ends the pipe, never Hangar; the child's exit reports the rest.
 */
export function quietPipes(child: ReplicaProcess): void {
  for (const pipe of child.stdio as ReadonlyArray<NodeJS.EventEmitter | null | undefined>) {
    pipe?.on("error", () => {});
  }
}

let setprivFound: boolean | undefined;
/** util-linux's setpriv, which sets the parent-death signal before it runs the replica. */
export function hasSetpriv(): boolean {
  setprivFound ??= spawnSync("setpriv", ["--version"], { stdio: "ignore" }).status === 0;
  return setprivFound;
}

/**
 * No fence: the replica runs as Hangar's user, in Hangar's view of the
 * machine. It still gets only its own environment, a private HOME and
 * TMPDIR, the channel, and dies with Hangar (parent-death signal).
 */
export class Unfenced implements Sandbox {
  constructor(
    readonly state: SandboxState,
    readonly reason: string | null,
    /** A free TCP port for a server command (unfenced, it listens on the host's loopback). */
    private readonly freePort: () => Promise<number>,
  ) {}

  async prepare(replica: ReplicaToLaunch): Promise<ReplicaLaunch> {
    const { spec, dirs } = replica;
    const port = spec.command ? await this.freePort() : null;
    const env = replicaEnvironment(replica, { home: dirs.home, tmp: dirs.tmp, modelDir: spec.dir }, port);
    const runner = [process.execPath, replica.runner];
    const [file, ...args] = hasSetpriv() ? ["setpriv", "--pdeathsig", "KILL", "--", ...runner] : runner;
    return {
      file: file as string,
      args,
      env,
      cwd: spec.dir,
      settings: { codeRoot: null, command: spec.command, port, awaitNetwork: false },
      stage: async (next) => next.dir,
      release: async () => {},
      explainExit: async () => null,
      extraPipes: 0,
      attach: async () => null,
    };
  }
}
