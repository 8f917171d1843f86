// @ts-check
// Hangar's JavaScript model server: the program one replica process runs for a model folder that has
// model.mjs / model.js. It is spawned directly with `node` (no TypeScript loader) so that replicas start
// fast, and it has no dependencies so that it runs from any checkout or artifact as is.
//
// Environment: PORT (listen on 127.0.0.1:PORT), HANGAR_MODEL_DIR (the model folder),
// HANGAR_ENVIRONMENT (environment name, empty = null), HANGAR_MODEL_CONFIG (JSON, default {}).
//
// HTTP: GET /health -> 200 {"status":"ok"} (the server only listens once load() finished);
// POST /predict with a JSON body -> 200 with the JSON of model.predict(input);
// errors are {"error","error_code"}: 400 client_error, 500 application_error, 404 not_found,
// 405 method_not_allowed.

import { existsSync } from "node:fs";
import http from "node:http";
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

/** Set once the model is loaded and the server is listening. */
let ready = false;
/** Set by SIGTERM/SIGINT: answers from then on close their connection so that the server can drain. */
let stopping = false;
/** @type {http.Server | undefined} */
let server;
/** @type {Model} */
let model;

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
 */
function predict(res, body) {
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
    result = model.predict(input);
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
    req.on("end", () => predict(res, chunks === undefined ? first : Buffer.concat(chunks)));
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

  send(res, 404, NOT_FOUND);
}

/** @param {NodeJS.Signals} signal */
function stop(signal) {
  if (stopping) return;
  stopping = true;
  if (server === undefined || !server.listening) {
    // Still loading: there is nothing in flight to finish.
    process.exit(0);
  }
  setTimeout(() => {
    process.stderr.write(
      `model server: requests still in flight ${FORCE_EXIT_AFTER_MS} ms after ${signal}, exiting\n`,
    );
    process.exit(1);
  }, FORCE_EXIT_AFTER_MS).unref();
  // close() stops accepting and drops idle keep-alive connections; busy ones close after their answer
  // (see `stopping` in send), and the callback runs when the last one is gone.
  server.close(() => process.exit(0));
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

async function main() {
  const port = Number(process.env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    failToLoad(new Error(`PORT must be a port number, got ${JSON.stringify(process.env.PORT ?? "")}`));
  }
  const dirSetting = process.env.HANGAR_MODEL_DIR;
  if (!dirSetting) failToLoad(new Error("HANGAR_MODEL_DIR is not set"));
  const dir = path.resolve(dirSetting);
  const environment = process.env.HANGAR_ENVIRONMENT || null;
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
  const file = ["model.mjs", "model.js"].map((name) => path.join(dir, name)).find((f) => existsSync(f));
  if (file === undefined) failToLoad(new Error(`no model.mjs or model.js in ${dir}`));
  try {
    /** @type {{ default?: unknown }} */
    const mod = await import(pathToFileURL(file).href);
    const Model = mod.default;
    if (typeof Model !== "function") {
      failToLoad(
        new Error(
          `${path.basename(file)} must default-export a class (export default class Model { ... }), ` +
            `got ${Model === null ? "null" : typeof Model}`,
        ),
      );
    }
    model = new /** @type {ModelClass} */ (Model)({ environment, config });
    if (typeof model?.predict !== "function") {
      failToLoad(new Error(`the model class in ${path.basename(file)} has no predict() method`));
    }
    if (typeof model.load === "function") await model.load();
  } catch (err) {
    failToLoad(err);
  }
  const loadedIn = Math.round(performance.now() - started);

  const httpServer = http.createServer({ noDelay: true }, onRequest);
  httpServer.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  // Must outlast keepAliveTimeout, else a slow first byte on a reused connection is cut off first.
  httpServer.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;
  httpServer.on("error", (err) => {
    if (!ready) failToLoad(new Error(`cannot listen on 127.0.0.1:${port}: ${err.message}`));
    process.stderr.write(`model server: ${err.stack ?? err.message}\n`);
  });
  server = httpServer;
  httpServer.listen(port, "127.0.0.1", () => {
    ready = true;
    process.stdout.write(`model loaded in ${loadedIn} ms\n`);
  });
}

process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.on("uncaughtException", onStrayError);
process.on("unhandledRejection", onStrayError);

main();
