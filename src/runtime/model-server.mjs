// @ts-check
// Hangar's replica runner: the one program of Hangar's that a replica process runs. It is spawned directly
// with `node` (no TypeScript loader) so that replicas start fast, and it has no dependencies so that it
// runs from any checkout, inside a sandbox that shows it only this file and the model folder.
//
// Settings: the first line of stdin is JSON {"secret": 64 hex digits, "codeRoot": path or null, "command":
// string or null, "port": number or null, "awaitNetwork": boolean}. With awaitNetwork the runner loads
// nothing of the model until a second line says the replica's network is settled ({"network": "up"} or
// {"network": "none"}): Hangar puts it up while Node starts, so a model's constructor finds its way out.
// Stdin then stays open: its end (Hangar closed it, or Hangar died) means stop, as SIGTERM does.
// Environment: HANGAR_MODEL_DIR (the model folder), HANGAR_ENVIRONMENT (environment name, empty = null),
// HANGAR_MODEL_CONFIG (JSON, default {}).
//
// The channel (runtime/replica-channel.ts): the runner serves only the Unix socket Hangar made for it,
// which it inherits already bound as descriptor 3, and a connection must open with
// "HANGAR-REPLICA <secret>\n" before anything else; any other opening is answered 403 and closed. So
// only the Hangar process that started the replica can call it.
//
// With `command` (hangar.json server.command) the runner is a relay: it runs the command with PORT=`port`
// and passes each accepted connection through to 127.0.0.1:port; the command's exit is the runner's.
//
// Without, it serves model.mjs / model.js. HTTP: GET /health -> 200 {"status":"ok"} (the server only
// listens once load() finished); POST /predict with a JSON body -> 200 with the JSON of
// model.predict(input); errors are {"error","error_code"}: 400 client_error, 500 application_error,
// 404 not_found, 405 method_not_allowed, 413 payload_too_large.
//
// Live reload (the development deployment's patches, API.md section 6): POST /_hangar/reload with
// {"dir": "<absolute path of the new model folder>", "config": <optional JSON>} imports the model from
// that folder, constructs it with the same environment (and the given config, else the current one),
// awaits load(), and only then swaps it in: a request uses the model that was current when it arrived,
// so requests in flight finish on the old instance and every later one uses the new one. Same process.
// -> 200 {"status":"reloaded","loadMs":N}; 422 load_failed when import, constructor or load() throws
// (the old model keeps serving); 400 client_error for a bad body, or a dir that is not an existing
// directory inside `codeRoot` (where Hangar stages the code; any absolute path when it is null).
// Reloads run one at a time, in the order they arrive. The gateway forwards only to /predict.
//
// Node's ESM cache is keyed by URL: a new folder (uploads are stored by content hash, each in its own
// folder) gives fresh modules for the model and everything it imports relatively. When a folder is
// loaded again, its entry module gets a `?reload=N` query so that it is evaluated again; modules it
// imports from that folder are then the cached ones (same folder, same content). Old modules stay in
// the cache for the life of the process: a development replica restarts often enough for that.

import { spawn } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import { existsSync, realpathSync } from "node:fs";
import { stat } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";

/** @typedef {{ load?: () => unknown, predict: (input: unknown) => unknown }} Model */
/** @typedef {new (options: { environment: string | null, config: unknown }) => Model} ModelClass */

// Longer than any proxy's idle timeout (the gateway pools connections), so that the gateway, not this
// server, decides when an idle connection goes away and never writes into a socket we just closed.
const KEEP_ALIVE_TIMEOUT_MS = 65_000;
const FORCE_EXIT_AFTER_MS = 10_000;

const JSON_TYPE = "application/json";

/**
 * A fixed answer, serialized once: health, 404 and 400 are sent as ready-made buffers.
 * @param {unknown} value
 */
function fixedBody(value) {
  return Buffer.from(JSON.stringify(value));
}
const HEALTH_OK = fixedBody({ status: "ok" });
const NOT_FOUND = fixedBody({ error: "not found", error_code: "not_found" });
const NOT_JSON = fixedBody({ error: "request body is not valid JSON", error_code: "client_error" });
const PREDICT_NEEDS_POST = fixedBody({
  error: "use POST for /predict",
  error_code: "method_not_allowed",
});
const HEALTH_NEEDS_GET = fixedBody({ error: "use GET for /health", error_code: "method_not_allowed" });
const RELOAD_NEEDS_POST = fixedBody({
  error: "use POST for /_hangar/reload",
  error_code: "method_not_allowed",
});
const RELOAD_PATH = "/_hangar/reload";
/** A reload body is a path and a config: anything bigger is a mistake. */
const MAX_RELOAD_BODY_BYTES = 1024 * 1024;
const RELOAD_TOO_LARGE = fixedBody({
  error: `reload body exceeds ${MAX_RELOAD_BODY_BYTES} bytes`,
  error_code: "payload_too_large",
});
const RELOAD_BODY_SHAPE = 'expected a JSON object {"dir": "<absolute path>", "config": <optional JSON>}';

/** Set once the model is loaded and the server is listening. */
let ready = false;
/** Set by SIGTERM/SIGINT or the end of stdin: answers from then on close their connection so that the server can drain. */
let stopping = false;
/** @type {http.Server | undefined} */
let server;
/** The model that new requests use; swapped by a reload once the next one has loaded. @type {Model} */
let model;
/** The folder `model` came from (absolute). */
let modelDir = "";
/** The config `model` was constructed with: a reload without `config` keeps it. @type {unknown} */
let modelConfig = {};
/** @type {string | null} */
let environment = null;
/** Where Hangar stages code for this replica: reloads load only from inside it (null: anywhere). @type {string | null} */
let codeRoot = null;
/** Entry module URLs imported so far: importing one again needs a query to be evaluated again. */
const importedEntries = new Set();
let reloadCount = 0;
/** The tail of the reload queue: each reload starts when the previous one has answered. */
let reloadQueue = Promise.resolve();

/**
 * @param {unknown} err
 * @returns {string}
 */
function messageOf(err) {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === "object" && err !== null && typeof (/** @type {any} */ (err).message) === "string") {
    return /** @type {{ message: string }} */ (err).message;
  }
  return String(err);
}

/**
 * Start-up failures are reported in this exact form: the runtime copies stderr into the deployment's logs.
 * @param {unknown} err
 * @returns {never}
 */
function failToLoad(err) {
  process.stderr.write(`model failed to load: ${messageOf(err)}\n`);
  if (err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exit(1);
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {string | Buffer} body
 */
function send(res, status, body) {
  const length = typeof body === "string" ? Buffer.byteLength(body) : body.length;
  if (stopping) {
    res.writeHead(status, { "content-type": JSON_TYPE, "content-length": length, connection: "close" });
  } else {
    res.writeHead(status, { "content-type": JSON_TYPE, "content-length": length });
  }
  res.end(body);
}

/**
 * @param {http.ServerResponse} res
 * @param {unknown} err
 */
function sendApplicationError(res, err) {
  // The stack goes to the replica's log; only the message goes back to the caller.
  process.stderr.write(`predict failed: ${err instanceof Error && err.stack ? err.stack : messageOf(err)}\n`);
  send(res, 500, JSON.stringify({ error: messageOf(err), error_code: "application_error" }));
}

/**
 * @param {http.ServerResponse} res
 * @param {unknown} result
 */
function sendResult(res, result) {
  let json;
  try {
    json = JSON.stringify(result === undefined ? null : result);
  } catch (err) {
    // BigInt, cycles, a throwing toJSON: the model's fault, so it is an application error.
    sendApplicationError(res, new Error(`predict() returned a value that is not JSON: ${messageOf(err)}`));
    return;
  }
  // JSON.stringify gives undefined for a function or a symbol.
  send(res, 200, json === undefined ? "null" : json);
}

/**
 * @param {unknown} value
 * @returns {value is PromiseLike<unknown>}
 */
function isThenable(value) {
  return (
    ((typeof value === "object" && value !== null) || typeof value === "function") &&
    typeof (/** @type {{ then?: unknown }} */ (value).then) === "function"
  );
}

/**
 * @param {http.ServerResponse} res
 * @param {Buffer | undefined} body
 * @param {Model} current the model that was current when the request arrived
 */
function predict(res, body, current) {
  let input;
  try {
    // An empty body is not JSON either.
    input = JSON.parse(body === undefined ? "" : body.toString("utf8"));
  } catch {
    send(res, 400, NOT_JSON);
    return;
  }
  let result;
  try {
    result = current.predict(input);
  } catch (err) {
    sendApplicationError(res, err);
    return;
  }
  // A synchronous predict is answered in the same tick: no promise, no extra microtask.
  if (isThenable(result)) {
    Promise.resolve(result).then(
      (value) => sendResult(res, value),
      (err) => sendApplicationError(res, err),
    );
  } else {
    sendResult(res, result);
  }
}

/**
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 */
function onRequest(req, res) {
  const url = req.url ?? "";
  const query = url.indexOf("?");
  const pathname = query === -1 ? url : url.slice(0, query);

  if (pathname === "/predict") {
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      send(res, 405, PREDICT_NEEDS_POST);
      return;
    }
    // The model of the moment the request arrived: a reload that swaps while its body is still coming
    // in does not move it to the new model halfway.
    const current = model;
    // Most bodies arrive in one chunk: keep it as is and concatenate only when there are more.
    /** @type {Buffer | undefined} */
    let first;
    /** @type {Buffer[] | undefined} */
    let chunks;
    req.on("data", (/** @type {Buffer} */ chunk) => {
      if (first === undefined) first = chunk;
      else if (chunks === undefined) chunks = [first, chunk];
      else chunks.push(chunk);
    });
    req.on("end", () => predict(res, chunks === undefined ? first : Buffer.concat(chunks), current));
    // A client that goes away mid-body: nobody is left to answer, and it must not crash the replica.
    req.on("error", () => {});
    return;
  }

  if (pathname === "/health") {
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, HEALTH_NEEDS_GET);
      return;
    }
    send(res, 200, HEALTH_OK);
    return;
  }

  if (pathname === RELOAD_PATH) {
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      send(res, 405, RELOAD_NEEDS_POST);
      return;
    }
    onReload(req, res);
    return;
  }

  send(res, 404, NOT_FOUND);
}

/**
 * @param {http.ServerResponse} res
 * @param {number} status
 * @param {string} message
 * @param {string} code
 */
function sendError(res, status, message, code) {
  send(res, status, JSON.stringify({ error: message, error_code: code }));
}

/**
 * Reads and checks a reload request, then queues the reload behind any that is running.
 * @param {http.IncomingMessage} req
 * @param {http.ServerResponse} res
 */
function onReload(req, res) {
  /** @type {Buffer[]} */
  const chunks = [];
  let size = 0;
  let tooLarge = false;
  req.on("data", (/** @type {Buffer} */ chunk) => {
    size += chunk.length;
    if (size > MAX_RELOAD_BODY_BYTES) tooLarge = true;
    else chunks.push(chunk);
  });
  req.on("error", () => {});
  req.on("end", async () => {
    if (tooLarge) {
      send(res, 413, RELOAD_TOO_LARGE);
      return;
    }
    /** @type {unknown} */
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      send(res, 400, NOT_JSON);
      return;
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      sendError(res, 400, RELOAD_BODY_SHAPE, "client_error");
      return;
    }
    const { dir } = /** @type {{ dir?: unknown }} */ (body);
    if (typeof dir !== "string" || !path.isAbsolute(dir)) {
      sendError(res, 400, `dir must be an absolute path; ${RELOAD_BODY_SHAPE}`, "client_error");
      return;
    }
    let isDirectory = false;
    try {
      isDirectory = (await stat(dir)).isDirectory();
    } catch {}
    if (!isDirectory) {
      sendError(res, 400, `dir is not an existing directory: ${dir}`, "client_error");
      return;
    }
    if (codeRoot !== null && !isInside(codeRoot, path.resolve(dir))) {
      sendError(res, 400, `dir is outside the code Hangar staged for this replica: ${dir}`, "client_error");
      return;
    }
    const hasConfig = Object.hasOwn(body, "config");
    const config = hasConfig ? /** @type {{ config: unknown }} */ (body).config : undefined;
    const turn = reloadQueue.then(() => reload(path.resolve(dir), hasConfig, config));
    // The queue goes on whatever this reload does (reload itself never throws).
    reloadQueue = turn.then(
      () => {},
      () => {},
    );
    const outcome = await turn;
    send(res, outcome.status, JSON.stringify(outcome.body));
  });
}

/**
 * @param {string} root absolute
 * @param {string} dir absolute
 */
function isInside(root, dir) {
  const relative = path.relative(realpathOrSelf(root), realpathOrSelf(dir));
  return relative === "" || (!relative.startsWith("..") && !path.isAbsolute(relative));
}

/**
 * @param {string} file
 * @returns {string}
 */
function realpathOrSelf(file) {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

/**
 * Loads the model of `dir` next to the current one and swaps it in once its load() has finished.
 * @param {string} dir absolute
 * @param {boolean} hasConfig
 * @param {unknown} config
 * @returns {Promise<{ status: number, body: unknown }>}
 */
async function reload(dir, hasConfig, config) {
  const started = performance.now();
  const nextConfig = hasConfig ? config : modelConfig;
  // The runtime starts a replica in its model folder; a model that reads files relative to the working
  // directory must find its new folder's, in load() already. Put back if the reload fails.
  let previousCwd = "";
  try {
    previousCwd = process.cwd();
  } catch {
    // The working directory was removed: nothing to follow or to go back to.
  }
  const followCwd = previousCwd !== "" && realpathOrSelf(previousCwd) === realpathOrSelf(modelDir);
  const previousDirSetting = process.env.HANGAR_MODEL_DIR;
  try {
    if (followCwd) process.chdir(dir);
    process.env.HANGAR_MODEL_DIR = dir;
    const next = await loadModel(dir, nextConfig);
    // The swap: from here on every request that arrives gets `next`.
    model = next;
    modelDir = dir;
    modelConfig = nextConfig;
    const loadMs = Math.round(performance.now() - started);
    process.stdout.write(`model reloaded in ${loadMs} ms\n`);
    return { status: 200, body: { status: "reloaded", loadMs } };
  } catch (err) {
    try {
      if (followCwd) process.chdir(previousCwd);
    } catch {}
    if (previousDirSetting === undefined) delete process.env.HANGAR_MODEL_DIR;
    else process.env.HANGAR_MODEL_DIR = previousDirSetting;
    process.stderr.write(`reload failed: ${messageOf(err)}\n`);
    if (err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
    return { status: 422, body: { error: messageOf(err), error_code: "load_failed" } };
  }
}

/**
 * Imports model.mjs / model.js from `dir`, constructs the model and awaits its load(). Throws what
 * went wrong; the caller decides whether that ends the process (start-up) or not (reload).
 * @param {string} dir absolute
 * @param {unknown} config
 * @returns {Promise<Model>}
 */
async function loadModel(dir, config) {
  const file = ["model.mjs", "model.js"].map((name) => path.join(dir, name)).find((f) => existsSync(f));
  if (file === undefined) throw new Error(`no model.mjs or model.js in ${dir}`);
  let href = pathToFileURL(file).href;
  if (importedEntries.has(href)) href += `?reload=${++reloadCount}`;
  else importedEntries.add(href);
  /** @type {{ default?: unknown }} */
  const mod = await import(href);
  const Model = mod.default;
  if (typeof Model !== "function") {
    throw new Error(
      `${path.basename(file)} must default-export a class (export default class Model { ... }), ` +
        `got ${Model === null ? "null" : typeof Model}`,
    );
  }
  const instance = new /** @type {ModelClass} */ (Model)({ environment, config });
  if (typeof instance?.predict !== "function") {
    throw new Error(`the model class in ${path.basename(file)} has no predict() method`);
  }
  if (typeof instance.load === "function") await instance.load();
  return instance;
}

/**
 * Stops serving: new connections are refused, idle ones dropped, busy ones closed after their answer
 * (see `stopping` in send); the process exits when the last one is gone.
 * @param {string} why
 */
function stop(why) {
  if (stopping) return;
  stopping = true;
  if (relayed !== undefined) {
    // The command decides how it drains; its exit ends the runner (see relay).
    relayed.kill("SIGTERM");
    return;
  }
  if (channel === undefined || !channel.listening) {
    // Still loading: there is nothing in flight to finish.
    process.exit(0);
  }
  setTimeout(() => {
    process.stderr.write(
      `model server: requests still in flight ${FORCE_EXIT_AFTER_MS} ms after ${why}, exiting\n`,
    );
    process.exit(1);
  }, FORCE_EXIT_AFTER_MS).unref();
  server?.closeIdleConnections();
  // The channel's close callback runs once every connection it accepted has ended.
  channel.close(() => process.exit(0));
}

/**
 * An error nobody awaited (a model's stray callback or promise). Before the model is ready it means
 * the load failed; afterwards it is logged and the replica keeps serving: one bad request must not take
 * down the others in flight.
 * @param {unknown} err
 */
function onStrayError(err) {
  if (!ready) failToLoad(err);
  process.stderr.write(
    `uncaught error in model: ${err instanceof Error && err.stack ? err.stack : messageOf(err)}\n`,
  );
}

/** @typedef {{ secret: string, codeRoot: string | null, command: string | null, port: number | null, awaitNetwork: boolean }} Settings */

/** The channel's listening socket, bound by Hangar (replica-channel.ts: CHANNEL_FD). */
const CHANNEL_FD = 3;

const MAX_LINE_BYTES = 64 * 1024;

/**
 * Reads stdin line by line, and keeps reading: its end means stop. Resolves each `nextLine()` with the
 * next line Hangar wrote.
 */
const stdinLines = (() => {
  /** @type {string[]} */
  const lines = [];
  /** @type {((line: string) => void) | null} */
  let waiting = null;
  let text = "";
  let ended = false;
  process.stdin.setEncoding("utf8");
  process.stdin.on("data", (/** @type {string} */ chunk) => {
    text += chunk;
    let newline = text.indexOf("\n");
    while (newline !== -1) {
      lines.push(text.slice(0, newline));
      text = text.slice(newline + 1);
      newline = text.indexOf("\n");
    }
    if (text.length > MAX_LINE_BYTES) failToLoad(new Error("a line from Hangar is too long"));
    if (waiting && lines.length > 0) {
      const resolve = waiting;
      waiting = null;
      resolve(/** @type {string} */ (lines.shift()));
    }
  });
  process.stdin.on("end", () => {
    ended = true;
    if (waiting) failToLoad(new Error("stdin ended before Hangar's settings"));
    stop("the end of stdin");
  });
  process.stdin.on("error", () => stop("an error on stdin"));
  return {
    /** @returns {Promise<string>} */
    nextLine() {
      const line = lines.shift();
      if (line !== undefined) return Promise.resolve(line);
      if (ended) failToLoad(new Error("stdin ended before Hangar's settings"));
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
  };
})();

/**
 * The settings line, and with awaitNetwork the word that the replica's network is settled.
 * @returns {Promise<Settings>}
 */
async function readSettings() {
  /** @type {any} */
  let value;
  try {
    value = JSON.parse(await stdinLines.nextLine());
  } catch (err) {
    failToLoad(new Error(`runner settings are not JSON: ${messageOf(err)}`));
  }
  if (!/^[0-9a-f]{64}$/.test(String(value?.secret))) {
    failToLoad(new Error("runner settings need a 64-hex-digit secret"));
  }
  const settings = {
    secret: value.secret,
    codeRoot: typeof value.codeRoot === "string" ? path.resolve(value.codeRoot) : null,
    command: typeof value.command === "string" ? value.command : null,
    port: Number.isInteger(value.port) ? value.port : null,
    awaitNetwork: value.awaitNetwork === true,
  };
  // What the line says does not matter here: without a network the replica runs closed off, and Hangar
  // has logged why.
  if (settings.awaitNetwork) await stdinLines.nextLine();
  return settings;
}

const PREAMBLE_PREFIX = "HANGAR-REPLICA ";
const PREAMBLE_BYTES = PREAMBLE_PREFIX.length + 64 + 1;
/** A connection that has not said who it is by then is dropped. */
const PREAMBLE_TIMEOUT_MS = 10_000;
const REFUSED_BODY = fixedBody({
  error: "only Hangar's gateway may call a replica",
  error_code: "forbidden",
});
const REFUSED = Buffer.concat([
  Buffer.from(
    `HTTP/1.1 403 Forbidden\r\ncontent-type: ${JSON_TYPE}\r\ncontent-length: ${REFUSED_BODY.length}\r\nconnection: close\r\n\r\n`,
  ),
  REFUSED_BODY,
]);

/**
 * Serves the inherited socket; a connection that opens with the secret is handed to `accept` (with any
 * bytes that came after the opening), any other is answered 403 and closed.
 * @param {Settings} settings
 * @param {(socket: net.Socket, rest: Buffer) => void} accept
 * @returns {Promise<net.Server>}
 */
async function listenOnChannel(settings, accept) {
  const expected = Buffer.from(`${PREAMBLE_PREFIX}${settings.secret}\n`);
  const listener = net.createServer((socket) => {
    /** @type {Buffer[]} */
    const chunks = [];
    let size = 0;
    socket.setTimeout(PREAMBLE_TIMEOUT_MS, () => socket.destroy());
    socket.on("error", () => {});
    const onData = (/** @type {Buffer} */ chunk) => {
      chunks.push(chunk);
      size += chunk.length;
      const head = Buffer.concat(chunks);
      const seen = head.subarray(0, PREAMBLE_BYTES);
      // Refuse as soon as the bytes so far cannot be the opening: a plain HTTP request is answered at once.
      if (!expected.subarray(0, Math.min(seen.length, PREFIX_BYTES)).equals(seen.subarray(0, PREFIX_BYTES))) {
        refuse(socket);
        return;
      }
      if (size < PREAMBLE_BYTES) return;
      socket.off("data", onData);
      socket.setTimeout(0);
      if (!timingSafeEqual(seen, expected)) {
        refuse(socket);
        return;
      }
      socket.pause();
      accept(socket, head.subarray(PREAMBLE_BYTES));
    };
    socket.on("data", onData);
  });
  await new Promise((resolve, reject) => {
    const onError = (/** @type {Error} */ err) =>
      reject(new Error(`no channel socket on descriptor ${CHANNEL_FD}: ${messageOf(err)}`));
    listener.once("error", onError);
    listener.listen({ fd: CHANNEL_FD }, () => {
      listener.off("error", onError);
      resolve(undefined);
    });
  });
  listener.on("error", (err) => process.stderr.write(`runner: ${err.stack ?? err.message}\n`));
  return listener;
}
const PREFIX_BYTES = PREAMBLE_PREFIX.length;

/** @param {net.Socket} socket */
function refuse(socket) {
  socket.removeAllListeners("data");
  socket.end(REFUSED);
}

/** @type {net.Server | undefined} */
let channel;
/** The server command, when this runner is a relay. @type {import("node:child_process").ChildProcess | undefined} */
let relayed;

/**
 * Runs the server command and passes connections through to its port: Hangar's gateway speaks to the
 * channel only, and the command's port is private (in the replica's own network namespace when fenced).
 * @param {Settings} settings
 * @param {string} command
 */
async function relay(settings, command) {
  const port = settings.port;
  if (port === null || port < 1 || port > 65535) failToLoad(new Error("the relay needs a port"));
  const child = spawn("/bin/sh", ["-c", `exec ${command}`], {
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "inherit", "inherit"],
  });
  relayed = child;
  child.once("error", (err) => failToLoad(new Error(`could not start the server command: ${err.message}`)));
  child.once("exit", (code, signal) => {
    // The runner ends the way the command did, so that Hangar reports the command's own exit.
    if (signal) {
      process.removeAllListeners("SIGTERM");
      process.removeAllListeners("SIGINT");
      process.kill(process.pid, signal);
    }
    process.exit(code ?? 1);
  });
  channel = await listenOnChannel(settings, (socket, rest) => {
    const upstream = net.connect(port, "127.0.0.1");
    upstream.setNoDelay(true);
    // Not listening yet (or gone): the caller sees the connection close and tries again later.
    upstream.on("error", () => socket.destroy());
    socket.on("error", () => upstream.destroy());
    upstream.once("connect", () => {
      if (rest.length > 0) upstream.write(rest);
      socket.pipe(upstream);
      upstream.pipe(socket);
      socket.resume();
    });
  });
}

async function main() {
  const settings = await readSettings();
  const dirSetting = process.env.HANGAR_MODEL_DIR;
  if (!dirSetting) failToLoad(new Error("HANGAR_MODEL_DIR is not set"));
  const dir = path.resolve(dirSetting);
  codeRoot = settings.codeRoot;
  if (settings.command !== null) {
    await relay(settings, settings.command);
    return;
  }
  environment = process.env.HANGAR_ENVIRONMENT || null;
  /** @type {unknown} */
  let config = {};
  const configSetting = process.env.HANGAR_MODEL_CONFIG;
  if (configSetting) {
    try {
      config = JSON.parse(configSetting);
    } catch (err) {
      failToLoad(new Error(`HANGAR_MODEL_CONFIG is not valid JSON: ${messageOf(err)}`));
    }
  }

  const started = performance.now();
  try {
    model = await loadModel(dir, config);
  } catch (err) {
    failToLoad(err);
  }
  modelDir = dir;
  modelConfig = config;
  const loadedIn = Math.round(performance.now() - started);
  if (stopping) process.exit(0);

  const httpServer = http.createServer({ noDelay: true }, onRequest);
  httpServer.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // Must outlast keepAliveTimeout, else a slow first byte on a reused connection is cut off first.
  httpServer.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
  httpServer.on("error", (err) => process.stderr.write(`model server: ${err.stack ?? err.message}\n`));
  server = httpServer;
  // The HTTP server gets its connections from the channel, not from a listen() of its own; 'listening' is
  // what starts its connection tracking (header and request timeouts, closeIdleConnections on stop).
  httpServer.emit("listening");
  try {
    channel = await listenOnChannel(settings, (socket, rest) => {
      if (rest.length > 0) socket.unshift(rest);
      httpServer.emit("connection", socket);
      socket.resume();
    });
  } catch (err) {
    failToLoad(new Error(`cannot serve the channel: ${messageOf(err)}`));
  }
  ready = true;
  process.stdout.write(`model loaded in ${loadedIn} ms\n`);
}

process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));
process.on("uncaughtException", onStrayError);
process.on("unhandledRejection", onStrayError);

main();
