// The replica runner (src/runtime/model-server.mjs) serving a model folder, and relaying to the python-echo
// example's server command, each run as a real child process reached through its channel (a Unix socket
// whose connections open with the replica's secret), the way the runtime runs a replica.
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readlinkSync, realpathSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Agent, type Response as UndiciResponse, fetch as undiciFetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/runtime/ports.ts";
import { listenForReplica, newReplicaSecret, replicaConnector } from "../../src/runtime/replica-channel.ts";

const repoRoot = fileURLToPath(new URL("../..", import.meta.url));
const modelServer = path.join(repoRoot, "src/runtime/model-server.mjs");
const sentimentDir = path.join(repoRoot, "examples/sentiment");
const pythonEchoDir = path.join(repoRoot, "examples/python-echo");
const hasPython = spawnSync("python3", ["--version"]).status === 0;

const fixtures: Record<string, Record<string, string>> = {
  announcing: {
    "model.mjs": `
      console.log("model imported");
      export default class Model { predict() { return { ok: true }; } }
    `,
  },
  working: {
    "model.mjs": `
      export default class Model {
        constructor({ environment, config }) {
          this.environment = environment;
          this.config = config;
          this.loaded = false;
        }
        async load() {
          await new Promise((resolve) => setTimeout(resolve, 50));
          this.loaded = true;
        }
        async predict(input) {
          if (input && input.sleepMs) {
            console.log("predict started");
            await new Promise((resolve) => setTimeout(resolve, input.sleepMs));
            console.log("predict finished");
            return { slept: input.sleepMs };
          }
          if (input && input.nothing) return undefined;
          if (input && input.bigint) return { n: 1n };
          if (input && input.strayError) {
            setTimeout(() => { throw new Error("stray callback error"); }, 0);
            Promise.reject(new Error("stray rejection"));
            return { ok: true };
          }
          return { input, environment: this.environment, config: this.config, loaded: this.loaded };
        }
      }
    `,
  },
  "sync-model-js": {
    // model.js (no model.mjs) with a synchronous predict and no load().
    "model.js": `
      export default class Model {
        predict(input) { return { doubled: input * 2 }; }
      }
    `,
  },
  "load-throws": {
    "model.mjs": `
      export default class Model {
        async load() { throw new Error("weights.bin is missing"); }
        predict() { return 1; }
      }
    `,
  },
  "constructor-throws": {
    "model.mjs": `
      export default class Model {
        constructor() { throw new Error("bad config"); }
        predict() { return 1; }
      }
    `,
  },
  "predict-throws": {
    "model.mjs": `
      export default class Model {
        predict(input) {
          if (input === "async") return Promise.reject(new Error("async failure"));
          if (input === "string") throw "plain string thrown";
          throw new Error("cannot handle " + JSON.stringify(input));
        }
      }
    `,
  },
  "no-default-export": {
    "model.mjs": `
      export class Model { predict() { return 1; } }
    `,
  },
  "default-not-a-class": {
    "model.mjs": `
      export default { predict() { return 1; } };
    `,
  },
  empty: {},
  // Live reload: the same model.mjs in two folders, whose relatively imported lib.mjs differs. The
  // module-level counter tells whether model.mjs was evaluated again.
  "reload-v1": {
    "model.mjs": reloadableModel(),
    "lib.mjs": `export const VERSION = "v1";`,
  },
  "reload-v2": {
    "model.mjs": reloadableModel(),
    "lib.mjs": `export const VERSION = "v2";`,
  },
  "reload-load-throws": {
    "model.mjs": `
      export default class Model {
        async load() { throw new Error("v3 weights are missing"); }
        predict() { return { version: "v3" }; }
      }
    `,
  },
  "reload-syntax-error": {
    "model.mjs": `export default class Model { predict( { }`,
  },
  // Slow loads that log when they start and end, to see whether two reloads overlap.
  "reload-slow-a": { "model.mjs": slowLoadingModel("a") },
  "reload-slow-b": { "model.mjs": slowLoadingModel("b") },
};

function reloadableModel() {
  return `
    import { VERSION } from "./lib.mjs";
    globalThis.__evaluations = (globalThis.__evaluations ?? 0) + 1;
    const evaluation = globalThis.__evaluations;
    export default class Model {
      constructor({ environment, config }) {
        this.environment = environment;
        this.config = config;
      }
      async load() {
        this.loaded = true;
      }
      async predict(input) {
        if (input && input.sleepMs) {
          console.log("predict started");
          await new Promise((resolve) => setTimeout(resolve, input.sleepMs));
        }
        return {
          version: VERSION,
          evaluation,
          loaded: this.loaded,
          pid: process.pid,
          environment: this.environment,
          config: this.config,
          cwd: process.cwd(),
          dirSetting: process.env.HANGAR_MODEL_DIR,
        };
      }
    }
  `;
}

function slowLoadingModel(name: string) {
  return `
    export default class Model {
      async load() {
        console.log("load ${name} started");
        await new Promise((resolve) => setTimeout(resolve, 300));
        console.log("load ${name} finished");
      }
      predict() { return { name: "${name}" }; }
    }
  `;
}

let fixturesRoot = "";
const running = new Set<ChildProcess>();

beforeAll(async () => {
  fixturesRoot = await mkdtemp(path.join(os.tmpdir(), "hangar-model-server-"));
  for (const [name, files] of Object.entries(fixtures)) {
    await mkdir(path.join(fixturesRoot, name));
    for (const [file, text] of Object.entries(files)) {
      await writeFile(path.join(fixturesRoot, name, file), text);
    }
  }
});

afterAll(async () => {
  // Whatever a test left running (a failed assertion skips its own cleanup).
  for (const child of running) child.kill("SIGKILL");
  if (fixturesRoot) await rm(fixturesRoot, { recursive: true, force: true });
});

/** Spawns the runner as ProcessRuntime does: its channel socket made here and handed over as fd 3. */
async function spawnRunner(options: { cwd?: string; env: NodeJS.ProcessEnv }, socket: string) {
  const channel = await listenForReplica(socket);
  try {
    return spawn(process.execPath, [modelServer], {
      ...options,
      stdio: ["pipe", "pipe", "pipe", channel.fd],
    });
  } finally {
    channel.close();
  }
}

interface Replica {
  child: ChildProcess;
  socket: string;
  /** fetch() through the replica's channel. */
  fetch: (pathname: string, init?: Parameters<typeof undiciFetch>[1]) => ReturnType<typeof undiciFetch>;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let sockets = 0;

/** Starts the runner with its settings on stdin: serving the model in env's folder, or relaying to `command`. */
async function spawnReplica(
  cwd: string,
  env: NodeJS.ProcessEnv,
  command: string | null = null,
  awaitNetwork = false,
) {
  const socket = path.join(fixturesRoot, `replica-${++sockets}.sock`);
  const secret = newReplicaSecret();
  const port = command === null ? null : await freePort();
  const child = await spawnRunner({ cwd, env: { ...process.env, ...env } }, socket);
  child.stdin?.on("error", () => {});
  child.stdin?.write(`${JSON.stringify({ secret, codeRoot: null, command, port, awaitNetwork })}\n`);
  running.add(child);
  let out = "";
  let err = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    out += chunk.toString();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    err += chunk.toString();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("close", (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const dispatcher = new Agent({ connect: replicaConnector(socket, secret) });
  void exited.then(() => dispatcher.close());
  const replica: Replica = {
    child,
    socket,
    fetch: (pathname, init) => undiciFetch(`http://replica${pathname}`, { ...init, dispatcher }),
    stdout: () => out,
    stderr: () => err,
    exited,
  };
  return replica;
}

interface StartOptions {
  environment?: string;
  config?: string;
  /** The replica's working directory; the repository by default (the runtime uses the model folder). */
  cwd?: string;
}

function startModelServer(dir: string, options: StartOptions = {}) {
  const env: NodeJS.ProcessEnv = {
    HANGAR_MODEL_DIR: dir,
    HANGAR_ENVIRONMENT: options.environment ?? "",
  };
  if (options.config !== undefined) env.HANGAR_MODEL_CONFIG = options.config;
  else env.HANGAR_MODEL_CONFIG = "";
  return spawnReplica(options.cwd ?? repoRoot, env);
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function waitForHealth(replica: Replica) {
  let exited = false;
  void replica.exited.then(() => {
    exited = true;
  });
  await waitFor("/health", async () => {
    if (exited) throw new Error(`replica exited before it was healthy; stderr:\n${replica.stderr()}`);
    try {
      const res = await replica.fetch("/health");
      await res.arrayBuffer();
      return res.status === 200;
    } catch {
      return false;
    }
  });
}

async function startHealthy(dir: string, options: StartOptions = {}) {
  const replica = await startModelServer(dir, options);
  await waitForHealth(replica);
  return replica;
}

function post(replica: Replica, body: string, pathname = "/predict", signal?: AbortSignal) {
  return replica.fetch(pathname, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
    ...(signal ? { signal } : {}),
  });
}

async function answer(res: UndiciResponse) {
  return { status: res.status, type: res.headers.get("content-type"), body: (await res.json()) as unknown };
}

describe("model server: a working model", () => {
  let replica: Replica;
  beforeAll(async () => {
    replica = await startHealthy(path.join(fixturesRoot, "working"), {
      environment: "staging",
      config: '{"threshold":0.5}',
    });
  });
  afterAll(() => {
    replica.child.kill("SIGKILL");
  });

  it("reports health and logs the load time", async () => {
    const res = await replica.fetch("/health");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    expect(res.headers.get("content-length")).toBe('{"status":"ok"}'.length.toString());
    expect(res.headers.get("connection")).toBe("keep-alive");
    expect(await res.json()).toEqual({ status: "ok" });
    expect(replica.stdout()).toMatch(/^model loaded in \d+ ms$/m);
  });

  it("answers predict with the model's JSON, environment and config passed through", async () => {
    const res = await post(replica, JSON.stringify({ text: "héllo ✓" }));
    expect(res.headers.get("content-length")).toBe(String(Buffer.byteLength(await res.clone().text())));
    expect(await answer(res)).toEqual({
      status: 200,
      type: "application/json",
      body: { input: { text: "héllo ✓" }, environment: "staging", config: { threshold: 0.5 }, loaded: true },
    });
  });

  it("takes any JSON value as input, whatever the content-type, and ignores a query string", async () => {
    for (const input of [null, 42, "text", [1, 2], true]) {
      const res = await replica.fetch("/predict?trace=1", {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: JSON.stringify(input),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { input: unknown }).input).toEqual(input);
    }
  });

  it("reads a body that arrives in many chunks", async () => {
    const big = { text: "x".repeat(300_000) };
    const res = await post(replica, JSON.stringify(big));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { input: unknown }).input).toEqual(big);
  });

  it("sends null for undefined and an application_error for an unserializable result", async () => {
    expect(await answer(await post(replica, '{"nothing":true}'))).toEqual({
      status: 200,
      type: "application/json",
      body: null,
    });
    const res = await post(replica, '{"bigint":true}');
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ error_code: "application_error" });
  });

  it("answers 400 client_error for a body that is not JSON, empty included", async () => {
    for (const body of ["{not json", ""]) {
      expect(await answer(await post(replica, body))).toEqual({
        status: 400,
        type: "application/json",
        body: { error: "request body is not valid JSON", error_code: "client_error" },
      });
    }
  });

  it("answers 404 not_found for other paths and 405 for the wrong method", async () => {
    expect(await answer(await post(replica, "{}", "/nope"))).toEqual({
      status: 404,
      type: "application/json",
      body: { error: "not found", error_code: "not_found" },
    });
    expect(await answer(await replica.fetch("/"))).toEqual({
      status: 404,
      type: "application/json",
      body: { error: "not found", error_code: "not_found" },
    });
    const res = await replica.fetch("/predict");
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe("POST");
    expect(await res.json()).toEqual({ error: "use POST for /predict", error_code: "method_not_allowed" });
  });

  it("survives errors thrown outside predict's promise", async () => {
    expect((await post(replica, '{"strayError":true}')).status).toBe(200);
    await waitFor("the stray errors in stderr", () => {
      const err = replica.stderr();
      return err.includes("stray callback error") && err.includes("stray rejection");
    });
    expect(replica.stderr()).toContain("uncaught error in model");
    expect((await replica.fetch("/health")).status).toBe(200);
  });

  it("survives a client that goes away mid-request", async () => {
    const controller = new AbortController();
    const pending = post(replica, '{"sleepMs":300}', "/predict", controller.signal);
    const before = replica.stdout().split("predict started").length;
    await waitFor("predict to start", () => replica.stdout().split("predict started").length > before);
    controller.abort();
    await expect(pending).rejects.toThrow();
    // The model answers after the client left: the write into the closed socket must be harmless.
    await waitFor("predict to finish", () => replica.stdout().includes("predict finished"));
    expect((await replica.fetch("/health")).status).toBe(200);
    expect(replica.child.exitCode).toBeNull();
  });
});

describe("model server: predict errors", () => {
  let replica: Replica;
  beforeAll(async () => {
    replica = await startHealthy(path.join(fixturesRoot, "predict-throws"));
  });
  afterAll(() => {
    replica.child.kill("SIGKILL");
  });

  it("answers 500 application_error with the thrown message, and keeps serving", async () => {
    expect(await answer(await post(replica, '{"a":1}'))).toEqual({
      status: 500,
      type: "application/json",
      body: { error: 'cannot handle {"a":1}', error_code: "application_error" },
    });
    expect(await answer(await post(replica, '"async"'))).toEqual({
      status: 500,
      type: "application/json",
      body: { error: "async failure", error_code: "application_error" },
    });
    expect(await answer(await post(replica, '"string"'))).toEqual({
      status: 500,
      type: "application/json",
      body: { error: "plain string thrown", error_code: "application_error" },
    });
    // The stack is logged for the deployment's logs, the caller gets only the message.
    expect(replica.stderr()).toContain("predict failed: Error: async failure");
    expect((await replica.fetch("/health")).status).toBe(200);
  });
});

describe("model server: live reload", () => {
  interface Prediction {
    version: string;
    evaluation: number;
    loaded: boolean;
    pid: number;
    environment: string | null;
    config: unknown;
    cwd: string;
    dirSetting: string;
  }
  const fixture = (name: string) => path.join(fixturesRoot, name);
  const reload = (replica: Replica, body: unknown) =>
    post(replica, typeof body === "string" ? body : JSON.stringify(body), "/_hangar/reload");
  const predictNow = async (replica: Replica, input: unknown = {}) => {
    const res = await post(replica, JSON.stringify(input));
    expect(res.status).toBe(200);
    return (await res.json()) as Prediction;
  };
  const expectReloaded = async (res: UndiciResponse) => {
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/json");
    const body = (await res.json()) as { status: string; loadMs: number };
    expect(body).toEqual({ status: "reloaded", loadMs: expect.any(Number) });
    expect(Number.isInteger(body.loadMs) && body.loadMs >= 0).toBe(true);
  };

  it("swaps in the new folder's code in the same process, keeping environment and config", async () => {
    const replica = await startHealthy(fixture("reload-v1"), { environment: "staging", config: '{"a":1}' });
    const before = await predictNow(replica);
    expect(before).toMatchObject({ version: "v1", pid: replica.child.pid, loaded: true, config: { a: 1 } });

    await expectReloaded(await reload(replica, { dir: fixture("reload-v2") }));
    const after = await predictNow(replica);
    expect(after).toMatchObject({
      version: "v2",
      pid: replica.child.pid,
      loaded: true,
      environment: "staging",
      config: { a: 1 },
      dirSetting: fixture("reload-v2"),
    });
    expect(after.evaluation).toBe(before.evaluation + 1);
    expect(replica.stdout()).toMatch(/^model reloaded in \d+ ms$/m);

    // A given config replaces the old one, null included.
    await expectReloaded(await reload(replica, { dir: fixture("reload-v2"), config: { b: 2 } }));
    expect((await predictNow(replica)).config).toEqual({ b: 2 });
    await expectReloaded(await reload(replica, { dir: fixture("reload-v1"), config: null }));
    expect(await predictNow(replica)).toMatchObject({ version: "v1", config: null });
    expect(replica.child.exitCode).toBeNull();
    expect((await replica.fetch("/health")).status).toBe(200);
  });

  it("gives fresh modules for what model.mjs imports relatively, and evaluates a folder again", async () => {
    // model.mjs is byte for byte the same in both folders: only its ./lib.mjs import differs.
    const replica = await startHealthy(fixture("reload-v1"));
    const first = await predictNow(replica);
    await expectReloaded(await reload(replica, { dir: fixture("reload-v2") }));
    expect((await predictNow(replica)).version).toBe("v2");

    // The same folder again (here the start-up one): its entry module is evaluated once more.
    await expectReloaded(await reload(replica, { dir: fixture("reload-v1") }));
    const again = await predictNow(replica);
    expect(again.version).toBe("v1");
    expect(again.evaluation).toBe(first.evaluation + 2);
    await expectReloaded(await reload(replica, { dir: fixture("reload-v1") }));
    expect((await predictNow(replica)).evaluation).toBe(first.evaluation + 3);
  });

  it("keeps the old model serving and answers 422 load_failed when the new one fails", async () => {
    const replica = await startHealthy(fixture("reload-v1"), { config: '{"a":1}' });
    const cases: [string, string | RegExp][] = [
      ["reload-load-throws", "v3 weights are missing"],
      ["constructor-throws", "bad config"],
      ["no-default-export", /^model\.mjs must default-export a class/],
      ["empty", `no model.mjs or model.js in ${fixture("empty")}`],
      ["reload-syntax-error", /./],
    ];
    for (const [name, message] of cases) {
      const res = await reload(replica, { dir: fixture(name), config: { x: 1 } });
      expect(res.status).toBe(422);
      const body = (await res.json()) as { error: string; error_code: string };
      expect(body.error_code).toBe("load_failed");
      if (typeof message === "string") expect(body.error).toBe(message);
      else expect(body.error).toMatch(message);
      expect(await predictNow(replica)).toMatchObject({
        version: "v1",
        pid: replica.child.pid,
        config: { a: 1 },
        dirSetting: fixture("reload-v1"),
      });
    }
    expect(replica.stderr()).toMatch(
      /^reload failed: v3 weights are missing\nError: v3 weights are missing\n\s+at /m,
    );
    expect(replica.stdout()).not.toContain("model reloaded");
    // A failed reload changes nothing: the next one works.
    await expectReloaded(await reload(replica, { dir: fixture("reload-v2") }));
    expect(await predictNow(replica)).toMatchObject({ version: "v2", config: { a: 1 } });
  });

  it("finishes a request in flight on the old model; later requests use the new one", async () => {
    const replica = await startHealthy(fixture("reload-v1"));
    let slowDone = false;
    const slow = predictNow(replica, { sleepMs: 1500 }).then((body) => {
      slowDone = true;
      return body;
    });
    await waitFor("predict to start", () => replica.stdout().includes("predict started"));

    await expectReloaded(await reload(replica, { dir: fixture("reload-v2") }));
    expect(slowDone).toBe(false);
    expect((await predictNow(replica)).version).toBe("v2");
    expect((await slow).version).toBe("v1");
    expect((await predictNow(replica)).version).toBe("v2");
  });

  it("runs concurrent reloads one after the other, the last one winning", async () => {
    const replica = await startHealthy(fixture("reload-v1"));
    const [a, b] = await Promise.all([
      reload(replica, { dir: fixture("reload-slow-a") }),
      reload(replica, { dir: fixture("reload-slow-b") }),
    ]);
    await expectReloaded(a);
    await expectReloaded(b);
    const order = replica
      .stdout()
      .split("\n")
      .filter((line) => line.startsWith("load "));
    expect(order).toHaveLength(4);
    // Whichever arrived first, its load finished before the other's began.
    expect(order[0]?.replace("started", "finished")).toBe(order[1]);
    expect(order[2]?.replace("started", "finished")).toBe(order[3]);
    const last = order[3]?.split(" ")[1];
    expect(await (await post(replica, "{}")).json()).toEqual({ name: last });
  });

  it("moves the working directory along when the replica runs in its model folder", async () => {
    const v1 = realpathSync(fixture("reload-v1"));
    const v2 = realpathSync(fixture("reload-v2"));
    const replica = await startHealthy(v1, { cwd: v1 });
    expect((await predictNow(replica)).cwd).toBe(v1);
    expect((await reload(replica, { dir: fixture("reload-load-throws") })).status).toBe(422);
    expect((await predictNow(replica)).cwd).toBe(v1);
    await expectReloaded(await reload(replica, { dir: v2 }));
    expect((await predictNow(replica)).cwd).toBe(v2);
  });

  it("answers 400 client_error for a bad body or dir, 405 for other methods, and changes nothing", async () => {
    const replica = await startHealthy(fixture("reload-v1"));
    const bad: [string, RegExp][] = [
      ["{nope", /^request body is not valid JSON$/],
      ["", /^request body is not valid JSON$/],
      ["[1]", /^expected a JSON object/],
      ["{}", /^dir must be an absolute path/],
      [JSON.stringify({ dir: 42 }), /^dir must be an absolute path/],
      [JSON.stringify({ dir: "reload-v2" }), /^dir must be an absolute path/],
      [JSON.stringify({ dir: fixture("does-not-exist") }), /^dir is not an existing directory: /],
      [JSON.stringify({ dir: fixture("reload-v2/model.mjs") }), /^dir is not an existing directory: /],
    ];
    for (const [body, message] of bad) {
      const res = await reload(replica, body);
      expect(res.status).toBe(400);
      const answerBody = (await res.json()) as { error: string; error_code: string };
      expect(answerBody.error_code).toBe("client_error");
      expect(answerBody.error).toMatch(message);
    }
    const big = await reload(
      replica,
      JSON.stringify({ dir: fixture("reload-v2"), pad: "x".repeat(1_100_000) }),
    );
    expect(big.status).toBe(413);
    expect(((await big.json()) as { error_code: string }).error_code).toBe("payload_too_large");

    const get = await replica.fetch("/_hangar/reload");
    expect(get.status).toBe(405);
    expect(get.headers.get("allow")).toBe("POST");
    expect(await get.json()).toEqual({
      error: "use POST for /_hangar/reload",
      error_code: "method_not_allowed",
    });
    expect((await predictNow(replica)).version).toBe("v1");
  });
});

describe("model server: start-up", () => {
  it("serves model.js when there is no model.mjs, with a synchronous predict and no load()", async () => {
    const replica = await startHealthy(path.join(fixturesRoot, "sync-model-js"));
    expect(await answer(await post(replica, "21"))).toEqual({
      status: 200,
      type: "application/json",
      body: { doubled: 42 },
    });
  });

  it("passes a null environment and an empty config by default", async () => {
    const replica = await startHealthy(path.join(fixturesRoot, "working"));
    const body = (await (await post(replica, "{}")).json()) as { environment: unknown; config: unknown };
    expect(body.environment).toBeNull();
    expect(body.config).toEqual({});
  });

  const failures: [string, string, RegExp][] = [
    ["load-throws", "load() throws", /^model failed to load: weights\.bin is missing$/m],
    ["constructor-throws", "the constructor throws", /^model failed to load: bad config$/m],
    [
      "no-default-export",
      "there is no default export",
      /^model failed to load: model\.mjs must default-export a class/m,
    ],
    ["default-not-a-class", "the default export is not a class", /must default-export a class .*got object/],
    ["empty", "there is no model file", /^model failed to load: no model\.mjs or model\.js in /m],
  ];
  for (const [fixture, when, message] of failures) {
    it(`exits 1 with the reason on stderr when ${when}`, async () => {
      const replica = await startModelServer(path.join(fixturesRoot, fixture));
      expect(await replica.exited).toEqual({ code: 1, signal: null });
      expect(replica.stderr()).toMatch(message);
      expect(replica.stdout()).not.toContain("model loaded");
    });
  }

  it("prints the stack of a load failure", async () => {
    const replica = await startModelServer(path.join(fixturesRoot, "load-throws"));
    expect((await replica.exited).code).toBe(1);
    expect(replica.stderr()).toMatch(/Error: weights\.bin is missing\n\s+at .*model\.mjs/);
  });

  it("exits 1 on invalid HANGAR_MODEL_CONFIG", async () => {
    const replica = await startModelServer(path.join(fixturesRoot, "working"), { config: "{oops" });
    expect((await replica.exited).code).toBe(1);
    expect(replica.stderr()).toContain("model failed to load: HANGAR_MODEL_CONFIG is not valid JSON");
  });
});

describe("the replica channel", () => {
  /** What a process that found the socket gets when it speaks HTTP without the secret. */
  async function rawExchange(socket: string, bytes: string): Promise<string> {
    const connection = net.connect(socket);
    let received = "";
    connection.on("data", (chunk: Buffer) => {
      received += chunk.toString();
    });
    connection.write(bytes);
    await new Promise((resolve) => connection.once("close", resolve));
    return received;
  }

  it("answers 403 and closes a connection that does not open with the secret", async () => {
    const replica = await startHealthy(path.join(fixturesRoot, "working"));
    const plain = await rawExchange(
      replica.socket,
      "POST /predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
    );
    expect(plain.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden");
    expect(plain).toContain('"error_code":"forbidden"');
    // The right opening with another secret is refused the same way, and the model never ran.
    const guessed = await rawExchange(
      replica.socket,
      `HANGAR-REPLICA ${newReplicaSecret()}\nGET /health HTTP/1.1\r\nhost: x\r\n\r\n`,
    );
    expect(guessed.split("\r\n")[0]).toBe("HTTP/1.1 403 Forbidden");
    expect(replica.stdout()).not.toContain("predict started");
    // The replica itself goes on serving Hangar.
    expect((await replica.fetch("/health")).status).toBe(200);
  });

  it("is a socket Hangar makes and lets go of: it stays at its path and Hangar takes none of its connections", async () => {
    const socket = path.join(fixturesRoot, `replica-${++sockets}.sock`);
    const channel = await listenForReplica(socket);
    channel.close();
    // Nobody holds it now, so a connection is refused rather than taken by Hangar.
    const outcome = await new Promise<string>((resolve) => {
      const connection = net.connect(socket);
      connection.once("connect", () => {
        connection.destroy();
        resolve("connected");
      });
      connection.once("error", (error: NodeJS.ErrnoException) => resolve(error.code ?? "error"));
    });
    expect(outcome).toBe("ECONNREFUSED");
    // Two made in one folder at once do not meet.
    const [a, b] = await Promise.all([
      listenForReplica(path.join(fixturesRoot, `replica-${++sockets}.sock`)),
      listenForReplica(path.join(fixturesRoot, `replica-${++sockets}.sock`)),
    ]);
    a.close();
    b.close();
  });

  it("exits with the reason when it is started without a channel socket", async () => {
    const child = spawn(process.execPath, [modelServer], {
      env: { ...process.env, HANGAR_MODEL_DIR: path.join(fixturesRoot, "working"), HANGAR_MODEL_CONFIG: "" },
      stdio: ["pipe", "pipe", "pipe"],
    });
    running.add(child);
    let err = "";
    child.stderr?.on("data", (chunk: Buffer) => {
      err += chunk.toString();
    });
    child.stdin?.write(
      `${JSON.stringify({ secret: newReplicaSecret(), codeRoot: null, command: null, port: null })}\n`,
    );
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    running.delete(child);
    expect(code).toBe(1);
    expect(err).toContain("cannot serve the channel: no channel socket on descriptor 3");
  });

  it("loads nothing of the model until Hangar says the replica's network is settled", async () => {
    const dir = path.join(fixturesRoot, "announcing");
    const replica = await spawnReplica(
      repoRoot,
      { HANGAR_MODEL_DIR: dir, HANGAR_MODEL_CONFIG: "" },
      null,
      true,
    );
    // Unheld, the runner imports a model within a few tens of milliseconds; held, it waits.
    const quietUntil = Date.now() + 750;
    while (Date.now() < quietUntil) {
      expect(replica.stdout()).not.toContain("model imported");
      expect(replica.child.exitCode).toBeNull();
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    replica.child.stdin?.write(`${JSON.stringify({ network: "none" })}\n`);
    await waitForHealth(replica);
    expect(replica.stdout()).toContain("model imported");
  });

  it("stops when its stdin ends, as when Hangar goes away", async () => {
    const replica = await startHealthy(path.join(fixturesRoot, "working"));
    replica.child.stdin?.end();
    expect(await replica.exited).toEqual({ code: 0, signal: null });
  });

  it("reloads only code inside the folder Hangar staged for it", async () => {
    const staged = path.join(fixturesRoot, "staged");
    await mkdir(staged, { recursive: true });
    const socket = path.join(fixturesRoot, `replica-${++sockets}.sock`);
    const secret = newReplicaSecret();
    const child = await spawnRunner(
      {
        env: {
          ...process.env,
          HANGAR_MODEL_DIR: path.join(fixturesRoot, "working"),
          HANGAR_MODEL_CONFIG: "",
        },
      },
      socket,
    );
    running.add(child);
    child.stdin?.write(`${JSON.stringify({ secret, codeRoot: staged, command: null, port: null })}\n`);
    const dispatcher = new Agent({ connect: replicaConnector(socket, secret) });
    try {
      await waitFor("/health", async () => {
        try {
          return (await undiciFetch("http://replica/health", { dispatcher })).status === 200;
        } catch {
          return false;
        }
      });
      const outside = await undiciFetch("http://replica/_hangar/reload", {
        dispatcher,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ dir: path.join(fixturesRoot, "reload-v2") }),
      });
      expect(outside.status).toBe(400);
      expect(((await outside.json()) as { error: string }).error).toContain("outside the code Hangar staged");
    } finally {
      child.kill("SIGKILL");
      await dispatcher.close();
    }
  });
});

describe("model server: graceful stop", () => {
  it("on SIGTERM stops accepting, finishes the request in flight, then exits 0", async () => {
    const replica = await startHealthy(path.join(fixturesRoot, "working"));
    let slowDone = false;
    let connectionHeader: string | null = null;
    const slow = post(replica, '{"sleepMs":1500}').then(async (res) => {
      slowDone = true;
      connectionHeader = res.headers.get("connection");
      return answer(res);
    });
    await waitFor("predict to start", () => replica.stdout().includes("predict started"));

    replica.child.kill("SIGTERM");
    await waitFor("the server to stop accepting", async () => {
      try {
        await (await replica.fetch("/health")).arrayBuffer();
        return false;
      } catch {
        return true;
      }
    });
    expect(slowDone).toBe(false);

    const finished = await slow;
    expect(finished).toEqual({ status: 200, type: "application/json", body: { slept: 1500 } });
    // Answers given while draining close their connection, so the drain does not wait for keep-alive.
    expect(connectionHeader).toBe("close");
    expect(await replica.exited).toEqual({ code: 0, signal: null });
  });

  it("exits 0 right away on SIGTERM when idle, idle keep-alive connections included", async () => {
    const replica = await startHealthy(path.join(fixturesRoot, "working"));
    // waitForHealth's fetch left a pooled keep-alive connection open.
    const started = Date.now();
    replica.child.kill("SIGTERM");
    expect(await replica.exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe("examples/sentiment", () => {
  let replica: Replica;
  beforeAll(async () => {
    replica = await startHealthy(sentimentDir, { environment: "production" });
  });
  afterAll(() => {
    replica.child.kill("SIGKILL");
  });

  it("scores text and reports its environment", async () => {
    const good = (await (await post(replica, '{"text":"I love it, really great work!"}')).json()) as {
      label: string;
      score: number;
      environment: string;
    };
    expect(good.label).toBe("positive");
    expect(good.score).toBeGreaterThan(0.5);
    expect(good.environment).toBe("production");

    const bad = await answer(await post(replica, '{"text":"terrible, it crashed and I hate it"}'));
    expect(bad).toMatchObject({ status: 200, body: { label: "negative", environment: "production" } });
    const negated = await answer(await post(replica, '{"text":"this is not good"}'));
    expect(negated).toMatchObject({ status: 200, body: { label: "negative" } });
    const neutral = await answer(await post(replica, '{"text":"the meeting is at noon"}'));
    expect(neutral).toMatchObject({ status: 200, body: { label: "neutral", score: 0 } });
  });

  it("answers application_error for input without text", async () => {
    expect(await answer(await post(replica, '{"txt":"typo"}'))).toEqual({
      status: 500,
      type: "application/json",
      body: {
        error: 'expected a JSON object {"text": "<string>"}, got an object without "text"',
        error_code: "application_error",
      },
    });
  });
});

describe.skipIf(!hasPython)("examples/python-echo", () => {
  it("serves /health and /predict with python3 through the relay, and exits 0 on SIGTERM", async () => {
    const replica = await spawnReplica(
      pythonEchoDir,
      { HANGAR_ENVIRONMENT: "staging", HANGAR_MODEL_DIR: pythonEchoDir },
      "python3 server.py",
    );
    await waitForHealth(replica);
    expect(await answer(await replica.fetch("/health"))).toEqual({
      status: 200,
      type: "application/json",
      body: { status: "ok" },
    });
    expect(await answer(await post(replica, '{"a":[1,"é"]}'))).toEqual({
      status: 200,
      type: "application/json",
      // The command is the runner's child: the pid it reports is not the runner's.
      body: { echo: { a: [1, "é"] }, environment: "staging", pid: expect.any(Number) },
    });
    expect(await answer(await post(replica, "{nope"))).toEqual({
      status: 400,
      type: "application/json",
      body: { error: "request body is not valid JSON", error_code: "client_error" },
    });
    expect((await post(replica, "{}", "/elsewhere")).status).toBe(404);

    replica.child.kill("SIGTERM");
    expect(await replica.exited).toEqual({ code: 0, signal: null });
  });
});

describe("the relay", () => {
  it("hands the server command none of its descriptors: the channel socket stays the runner's", async () => {
    const listing = path.join(fixturesRoot, "relayed-fds.txt");
    // The command writes down what its descriptors point at, then waits to be stopped.
    const command = `sh -c 'for fd in /proc/$$/fd/*; do readlink "$fd"; done > ${listing}; exec sleep 60'`;
    const replica = await spawnReplica(repoRoot, { HANGAR_MODEL_DIR: repoRoot }, command);
    let text = "";
    await waitFor("the command's descriptors", async () => {
      text = await readFile(listing, "utf8").catch(() => "");
      return text.endsWith("\n");
    });
    // The runner's own sockets beyond stdio: the channel it listens on (nothing has connected yet).
    const runnerFds = `/proc/${replica.child.pid}/fd`;
    const runnerSockets = (await readdir(runnerFds))
      .filter((fd) => Number(fd) > 2)
      .map((fd) => readlinkSync(path.join(runnerFds, fd), { encoding: "utf8" }))
      .filter((target) => target.startsWith("socket:"));
    expect(runnerSockets.length).toBeGreaterThan(0);
    const commandTargets = text.trim().split("\n");
    expect(commandTargets.filter((target) => runnerSockets.includes(target))).toEqual([]);
    replica.child.kill("SIGTERM");
    await replica.exited;
  });
});
