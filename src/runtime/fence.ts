/**
 * Decides once, at start, how this process runs replicas (API.md section 9):
 * fenced by bubblewrap when the machine allows it (HANGAR_SANDBOX=auto),
 * always (required: replicas refuse to start unfenced) or never (off), with
 * cgroup limits around either when they can be enforced. The report says
 * what holds, for the start-up line, the log and serverInfo.
 */
import { accessSync, constants, statSync } from "node:fs";
import path from "node:path";
import type { SandboxMode } from "../config.ts";
import { Bubblewrap, fenceProblem } from "./bubblewrap.ts";
import { type Cgroups, openCgroups } from "./cgroups.ts";
import type { IsolationReport } from "./isolation.ts";
import { Limited } from "./limits.ts";
import { freePort } from "./ports.ts";
import type { ReplicaLaunch, Sandbox } from "./sandbox.ts";
import { Unfenced } from "./sandbox.ts";

export interface Fence {
  sandbox: Sandbox;
  report: IsolationReport;
  /** Removes this process's cgroups (shutdown). */
  close(): Promise<void>;
}

/** HANGAR_SANDBOX=required on a machine that cannot fence: every start fails, saying why. */
class Refusing implements Sandbox {
  readonly state = "UNAVAILABLE" as const;
  constructor(readonly reason: string) {}
  async prepare(): Promise<ReplicaLaunch> {
    throw new Error(`HANGAR_SANDBOX=required and replicas cannot be fenced here: ${this.reason}`);
  }
}

/** The executable `program` on PATH, as a shell would find it; null when there is none. */
function which(program: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!path.isAbsolute(dir)) continue;
    const file = path.join(dir, program);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // Not here.
    }
  }
  return null;
}

export async function openFence(settings: { mode: SandboxMode; uidBase: number }): Promise<Fence> {
  const reasons: string[] = [];
  let sandbox: Sandbox;
  if (settings.mode === "off") {
    sandbox = new Unfenced("OFF", "HANGAR_SANDBOX=off: replicas run unfenced", freePort);
  } else {
    const options = {
      uidBase: settings.uidBase,
      root: process.getuid?.() === 0,
      slirp4netns: which("slirp4netns"),
    };
    const problem = fenceProblem(options);
    if (problem === null) sandbox = new Bubblewrap(options);
    else if (settings.mode === "required") sandbox = new Refusing(problem);
    else sandbox = new Unfenced("UNAVAILABLE", `${problem}; replicas run unfenced`, freePort);
  }
  if (sandbox.reason) reasons.push(sandbox.reason);

  const cgroups: Cgroups = await openCgroups();
  if (cgroups.enforced) {
    const reaped = await cgroups.reapLeftovers();
    if (reaped > 0) reasons.push(`killed ${reaped} process(es) left by a Hangar process that died`);
  } else {
    reasons.push(`resource limits are not enforced: ${cgroups.reason}`);
  }
  return {
    sandbox: cgroups.enforced ? new Limited(sandbox, cgroups) : sandbox,
    report: { sandbox: sandbox.state, limits: cgroups.enforced, reasons },
    close: () => (cgroups.enforced ? cgroups.close() : Promise.resolve()),
  };
}
