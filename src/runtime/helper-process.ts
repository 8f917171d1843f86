import { type ChildProcess, fork } from "node:child_process";
import { packagePath } from "../package-root.ts";

/**
 * Starts one of Hangar's small helper processes (`src/runtime/<name>`, plain JavaScript) with plain
 * Node: none of Hangar's flags (a TypeScript loader), only PATH of its environment, stderr shared and
 * an IPC channel for its messages. A helper spawns for Hangar, which saves each spawn the cost of
 * forking Hangar's large process.
 */
export function forkHelper(name: string): ChildProcess {
  return fork(packagePath("src", "runtime", name), [], {
    execArgv: [],
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
    stdio: ["ignore", "ignore", "inherit", "ipc"],
  });
}
