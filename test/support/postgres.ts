import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { chown, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort } from "../../src/runtime/ports.ts";

/** A throwaway PostgreSQL cluster on loopback, for the tests only. */
export interface ThrowawayPostgres {
  url: string;
  stop(): Promise<void>;
  /** Stops the server as an outage would (its connections cut), keeping its data. */
  pause(): Promise<void>;
  /** Starts it again on the same port and data. */
  resume(): Promise<void>;
}

function binDir(): string {
  for (const dir of (process.env.PATH ?? "").split(":")) if (existsSync(path.join(dir, "initdb"))) return dir;
  const root = "/usr/lib/postgresql";
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const version of versions) {
    const dir = path.join(root, version, "bin");
    if (existsSync(path.join(dir, "initdb"))) return dir;
  }
  throw new Error(
    "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's postgresql package (.ci/run does)",
  );
}

/** PostgreSQL refuses to run as root; as root, run it as the postgres (or nobody) user. */
function runAs(): { uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  for (const user of ["postgres", "nobody"]) {
    try {
      const uid = Number(execFileSync("id", ["-u", user]).toString().trim());
      const gid = Number(execFileSync("id", ["-g", user]).toString().trim());
      return { uid, gid };
    } catch {
      // try the next one
    }
  }
  throw new Error("running as root and no postgres or nobody user to run PostgreSQL as");
}

function run(file: string, args: string[], user: { uid: number; gid: number } | null): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ["ignore", "ignore", "pipe"], ...(user ?? {}) });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new Error(`${path.basename(file)} failed (${code}): ${stderr}`)),
    );
  });
}

export async function startPostgres(): Promise<ThrowawayPostgres> {
  const bin = binDir();
  const user = runAs();
  const dir = await mkdtemp(path.join(tmpdir(), "hangar-pg-"));
  if (user) await chown(dir, user.uid, user.gid);
  const data = path.join(dir, "data");
  await run(
    path.join(bin, "initdb"),
    ["-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
    user,
  );
  // pg_ctl binds the port itself, later: another process may take a free port first. PostgreSQL then
  // fails to start ("could not bind", "Address already in use"), and it is started again on another.
  let port = 0;
  let startOptions = "";
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    const options = [
      `-p ${port}`,
      "-c listen_addresses=127.0.0.1",
      `-c unix_socket_directories=${dir}`,
      "-c fsync=off",
      "-c synchronous_commit=off",
      "-c full_page_writes=off",
      "-c max_connections=300",
    ].join(" ");
    const log = path.join(dir, `log-${attempt}`);
    try {
      await run(path.join(bin, "pg_ctl"), ["-D", data, "-o", options, "-l", log, "-w", "start"], user);
      startOptions = options;
      break;
    } catch (error) {
      const text = await readFile(log, "utf8").catch(() => "");
      if (attempt >= 5 || !/could not bind|address already in use/i.test(text)) {
        throw new Error(`${(error as Error).message}\n${text}`);
      }
    }
  }
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    pause: () => run(path.join(bin, "pg_ctl"), ["-D", data, "-m", "fast", "-w", "stop"], user),
    resume: () =>
      run(
        path.join(bin, "pg_ctl"),
        ["-D", data, "-o", startOptions, "-l", path.join(dir, "log-resumed"), "-w", "start"],
        user,
      ),
    stop: async () => {
      await run(path.join(bin, "pg_ctl"), ["-D", data, "-m", "immediate", "-w", "stop"], user).catch(
        () => {},
      );
      await rm(dir, { recursive: true, force: true });
    },
  };
}
