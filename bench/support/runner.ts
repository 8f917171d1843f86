/**
 * Hangar's replica runner started on its own, as ProcessRuntime starts an
 * unfenced replica (its channel socket made here and handed over, its settings
 * on stdin), for the figures a benchmark compares Hangar against.
 */
import { spawn } from "node:child_process";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Agent, fetch as undiciFetch } from "undici";
import { listenForReplica, newReplicaSecret, replicaConnector } from "../../src/runtime/replica-channel.ts";
import { trackFolder, trackProcessGroup } from "./processes.ts";

const MODEL_SERVER = fileURLToPath(new URL("../../src/runtime/model-server.mjs", import.meta.url));

export interface LoneRunner {
  pid: number;
  /** Its channel, for a client of its own: the socket, and the secret each connection opens with. */
  socketPath: string;
  secret: string;
  /** POSTs `body` to the replica's `pathname` through its channel: the status, once the answer is read. */
  post(pathname: string, body: string): Promise<number>;
  /** Resolves once a POST of `body` to /predict is answered 200 (30 s at most: then it rejects). */
  answering(body: string): Promise<void>;
  stop(): Promise<void>;
}

export async function startRunner(modelDir: string): Promise<LoneRunner> {
  const dir = await mkdtemp(path.join(tmpdir(), "hangar-runner-"));
  trackFolder(dir);
  const socket = path.join(dir, "http.sock");
  const secret = newReplicaSecret();
  const channel = await listenForReplica(socket);
  const child = spawn(process.execPath, [MODEL_SERVER], {
    cwd: modelDir,
    env: {
      PATH: process.env.PATH ?? "",
      HANGAR_MODEL_DIR: modelDir,
      HANGAR_ENVIRONMENT: "",
      HOME: dir,
      TMPDIR: dir,
    },
    stdio: ["pipe", "ignore", "ignore", channel.fd],
    detached: true,
  });
  channel.close();
  if (child.pid) trackProcessGroup(child.pid);
  child.stdin?.on("error", () => {});
  child.stdin?.write(`${JSON.stringify({ secret, codeRoot: null, command: null, port: null })}\n`);
  const dispatcher = new Agent({ connect: replicaConnector(socket, secret) });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const post = async (pathname: string, body: string) => {
    const response = await undiciFetch(`http://replica${pathname}`, { method: "POST", body, dispatcher });
    await response.arrayBuffer();
    return response.status;
  };
  return {
    pid: child.pid ?? 0,
    socketPath: socket,
    secret,
    post,
    answering: async (body) => {
      const deadline = Date.now() + 30_000;
      while ((await post("/predict", body).catch(() => 0)) !== 200) {
        if (Date.now() > deadline) throw new Error("the lone runner did not answer in 30 s");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    stop: async () => {
      child.stdin?.end();
      await exited;
      await dispatcher.close();
    },
  };
}
