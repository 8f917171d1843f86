/**
 * The bodies of POST /graphql, read within their limits before yoga sees them (API.md section 8).
 *
 * - A GraphQL body that is not an upload (JSON) may be `maxBodyBytes`: a larger declared Content-Length is
 *   refused with 413 at once, and a body found larger while it streams in (chunked, or no length) is
 *   refused with 413 as soon as it is. At most the limit is held in memory.
 * - An upload (a multipart request, the GraphQL multipart request spec) is written to temporary files as
 *   it streams in, never held in memory. `maxUploadBytes` is for the files of one request together: a
 *   declared Content-Length beyond it (plus room for the fields) is refused with 413 at once; a file found
 *   to take it past the limit stops the reading there, and the mutation gets a file that fails to read
 *   with InvalidArchiveError, which it answers with INVALID_INPUT on `source`.
 *
 * What was read goes to yoga in `req.body`, which @whatwg-node/server uses instead of the request stream:
 * a JSON body as its bytes, an upload as its `operations` with the files put where `map` says (the
 * GraphQL multipart request spec), so yoga reads it as a parsed JSON body. Yoga's own multipart parsing
 * would hold every file in memory, and its `maxRequestBodySize` (25 MB by default) would refuse uploads
 * the upload limit allows. The rest of a refused body is never read as a body: the answer is the
 * connection's last (see lastAnswer).
 */
import { createWriteStream } from "node:fs";
import { type FileHandle, open, rm } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { Busboy, type BusboyFileStream, type BusboyHeaders } from "@fastify/busboy";
import { formatBytes, InvalidArchiveError } from "../store/artifacts.ts";

export interface BodyLimits {
  /** A GraphQL body that is not an upload: the whole body, in bytes. */
  maxBodyBytes: number;
  /** The files of one upload together, in bytes. */
  maxUploadBytes: number;
  /** A fresh path to receive an uploaded file in; leftovers of a killed process must be swept. */
  spoolPath(): Promise<string>;
}

/** Files per request: Hangar's mutations take one each; a few in one document are plenty. */
const MAX_FILES = 4;
const MAX_FIELDS = 64;
/** Part headers and boundaries around the fields, beyond the fields' own bytes. */
const MULTIPART_SLACK_BYTES = 64 * 1024;

type WithBody = IncomingMessage & { body?: unknown };

/**
 * Reads the body of a POST /graphql. True when yoga should go on (the body is in `req.body`); false when
 * the request has been answered (413, 400), or the client went away.
 */
export function readGraphqlBody(
  req: IncomingMessage,
  res: ServerResponse,
  limits: BodyLimits,
): Promise<boolean> {
  const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  return type === "multipart/form-data"
    ? readUpload(req, res, limits)
    : readJson(req, res, limits.maxBodyBytes);
}

function declaredLength(req: IncomingMessage): number | null {
  const raw = req.headers["content-length"];
  // Node's parser has already refused a Content-Length that is not a number.
  return raw === undefined ? null : Number(raw);
}

/** How long what a client still sends after its last answer is dropped before the connection closes. */
const LINGER_MS = 2_000;

/**
 * Makes this answer the connection's last, so the unread rest of the body is never read as a body. The
 * connection closes gently: the answer goes out with a FIN, what the client still sends is dropped (never
 * kept) for at most LINGER_MS, then the socket closes. Closed at once with unread data, it would be reset,
 * and a client still sending could lose the answer.
 */
function lastAnswer(res: ServerResponse): void {
  res.setHeader("connection", "close");
  const socket = res.socket;
  if (!socket) return;
  // Node closes a `connection: close` socket with destroySoon() once the answer is out: half-close instead.
  socket.destroySoon = () => {
    if (!socket.writableEnded) socket.end();
  };
  res.once("finish", () => {
    res.req.resume();
    const timer = setTimeout(() => socket.destroy(), LINGER_MS);
    timer.unref();
    socket.once("close", () => clearTimeout(timer));
  });
}

/** Answers with an error, as the connection's last answer. */
function refuse(res: ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent || res.destroyed) return;
  lastAnswer(res);
  const payload = JSON.stringify({ error: message, error_code: code });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
  res.end(payload);
}

function tooLarge(res: ServerResponse, what: string, limit: number): void {
  refuse(res, 413, "payload_too_large", `${what} exceeds the ${formatBytes(limit)} limit`);
}

function readJson(req: WithBody, res: ServerResponse, limit: number): Promise<boolean> {
  const declared = declaredLength(req);
  if (declared !== null && declared > limit) {
    tooLarge(res, "the request body", limit);
    return Promise.resolve(false);
  }
  // Nothing to read: yoga reads the (empty) stream itself and says what is missing.
  if (declared === 0) return Promise.resolve(true);
  return new Promise<boolean>((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (ok: boolean) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("error", onGone);
      res.off("close", onGone);
      if (!ok) req.pause();
      resolve(ok);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        tooLarge(res, "the request body", limit);
        return settle(false);
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      // An empty Buffer would make @whatwg-node read the (spent) stream again; a space is still no JSON.
      req.body = size === 0 ? " " : Buffer.concat(chunks, size);
      settle(true);
    };
    const onGone = () => settle(false);
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("error", onGone);
    res.once("close", onGone);
  });
}

/** The File an upload's resolver gets: `stream()` is what Hangar's resolvers read. */
abstract class UploadedFile {
  readonly lastModified = Date.now();

  constructor(
    readonly name: string,
    readonly type: string,
    readonly size: number,
  ) {}

  get [Symbol.toStringTag](): string {
    return "File";
  }

  abstract stream(): ReadableStream<Uint8Array>;
  abstract bytes(): Promise<Uint8Array>;

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = await this.bytes();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  }

  async text(): Promise<string> {
    return Buffer.from(await this.bytes()).toString("utf8");
  }
}

/**
 * A file received whole. Its name is removed from the disk as soon as it is received: the open handle
 * keeps the data until the answer is sent, and nothing stays behind, whatever happens to the process.
 */
class SpooledFile extends UploadedFile {
  constructor(
    name: string,
    type: string,
    size: number,
    private readonly handle: FileHandle,
  ) {
    super(name, type, size);
  }

  stream(): ReadableStream<Uint8Array> {
    // Reads at explicit positions, so every stream of the file starts at its beginning.
    const stream = this.handle.createReadStream({ start: 0, autoClose: false, emitClose: false });
    return Readable.toWeb(stream) as ReadableStream<Uint8Array>;
  }

  async bytes(): Promise<Uint8Array> {
    const bytes = new Uint8Array(this.size);
    for (let at = 0; at < this.size; ) {
      const { bytesRead } = await this.handle.read(bytes, at, this.size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return bytes;
  }
}

/** A file that was over the limit: reading it fails as an archive over the limit does in the store. */
class RefusedFile extends UploadedFile {
  constructor(
    name: string,
    type: string,
    private readonly reason: string,
  ) {
    super(name, type, 0);
  }

  stream(): ReadableStream<Uint8Array> {
    const reason = this.reason;
    return new ReadableStream<Uint8Array>({
      start: (controller) => controller.error(new InvalidArchiveError(reason)),
    });
  }

  bytes(): Promise<Uint8Array> {
    return Promise.reject(new InvalidArchiveError(this.reason));
  }
}

/** A file took the upload past its limit. */
class OverLimit extends Error {}

function readUpload(req: WithBody, res: ServerResponse, limits: BodyLimits): Promise<boolean> {
  const { maxUploadBytes, maxBodyBytes } = limits;
  const declared = declaredLength(req);
  // The upload limit is for the files of one request together; the fields may add the JSON body limit.
  if (declared !== null && declared > maxUploadBytes + maxBodyBytes + MULTIPART_SLACK_BYTES) {
    tooLarge(res, "the upload", maxUploadBytes);
    return Promise.resolve(false);
  }
  let parser: ReturnType<typeof Busboy>;
  try {
    parser = Busboy({
      headers: req.headers as BusboyHeaders,
      limits: { fieldSize: maxBodyBytes, fields: MAX_FIELDS, files: MAX_FILES },
    });
  } catch (error) {
    refuse(res, 400, "client_error", `not a multipart request: ${(error as Error).message}`);
    return Promise.resolve(false);
  }
  const fields = new Map<string, string>();
  const files = new Map<string, UploadedFile>();
  // However the request ends, its files go with its answer (or with the connection).
  const cleanups: (() => Promise<unknown>)[] = [];
  let answered = false;
  res.once("close", () => {
    answered = true;
    for (const cleanup of cleanups) void cleanup().catch(() => {});
  });
  const overLimit = `upload exceeds the ${formatBytes(maxUploadBytes)} limit`;

  return new Promise<boolean>((resolve) => {
    const writes: Promise<void>[] = [];
    const receiving = new Set<BusboyFileStream>();
    let settled = false;
    let stopped = false;
    let sawFile = false;
    let fieldBytes = 0;
    let fileBytes = 0;

    const settle = (ok: boolean) => {
      if (settled) return;
      settled = true;
      req.off("data", countFields);
      req.off("error", onGone);
      res.off("close", onGone);
      req.unpipe(parser);
      req.pause();
      // Spool writes still running are abandoned (their pipelines fail and end).
      for (const stream of receiving) stream.destroy();
      if (!ok) return resolve(false);
      const operations = operationsOf(fields, files);
      if (typeof operations === "string") {
        refuse(res, 400, "client_error", operations);
        return resolve(false);
      }
      req.body = operations;
      // The stream's length says nothing about this body any more, and yoga would hold an upload's
      // Content-Length against its own 25 MB cap (maxRequestBodySize).
      delete req.headers["content-length"];
      delete req.headers["transfer-encoding"];
      resolve(true);
    };
    /** Whatever is being written finishes, then yoga goes on with what was received. */
    const whenWritten = () => void Promise.allSettled(writes).then(() => settle(true));
    /** Stops reading here: the rest is never read, and the connection ends with the answer. */
    const stopHere = () => {
      if (stopped) return;
      stopped = true;
      lastAnswer(res);
      req.unpipe(parser);
      req.pause();
      whenWritten();
    };
    const onGone = () => settle(false);

    // The fields come first (the spec puts operations and map before the files): they count against the
    // JSON body limit while they stream in, since busboy reports an over-long field only at its end.
    const countFields = (chunk: Buffer) => {
      if (sawFile) return;
      fieldBytes += chunk.length;
      if (fieldBytes > maxBodyBytes + MULTIPART_SLACK_BYTES) {
        tooLarge(res, "the upload's GraphQL fields", maxBodyBytes);
        settle(false);
      }
    };

    parser.on("field", (name: string, value: string, _nameTruncated: boolean, valueTruncated: boolean) => {
      if (valueTruncated) {
        tooLarge(res, `the upload's field '${name.slice(0, 100)}'`, maxBodyBytes);
        return settle(false);
      }
      fields.set(name, value);
    });

    parser.on(
      "file",
      (name: string, stream: BusboyFileStream, filename: string, _enc: string, mime: string) => {
        sawFile = true;
        // A body cut off mid-file errors the stream, maybe before the pipeline below listens (or when
        // it never will): unhandled, that 'error' would end the process.
        stream.on("error", () => {});
        if (settled || stopped) return void stream.resume();
        receiving.add(stream);
        stream.pause();
        const write = async () => {
          const file = await limits.spoolPath();
          if (settled) return;
          cleanups.push(() => rm(file, { force: true }));
          let size = 0;
          const counter = new Transform({
            transform(chunk: Buffer, _encoding, done) {
              size += chunk.length;
              fileBytes += chunk.length;
              done(fileBytes > maxUploadBytes ? new OverLimit() : null, chunk);
            },
          });
          try {
            await pipeline(stream, counter, createWriteStream(file, { flags: "wx", mode: 0o600 }));
            const handle = await open(file, "r");
            await rm(file);
            if (answered) return void (await handle.close());
            cleanups.push(() => handle.close());
            files.set(name, new SpooledFile(filename, mime, size, handle));
          } catch (error) {
            await rm(file, { force: true });
            if (error instanceof OverLimit) {
              files.set(name, new RefusedFile(filename, mime, overLimit));
              stopHere();
            } else if (!settled && !stopped) {
              throw error;
            }
          } finally {
            receiving.delete(stream);
          }
        };
        const written = write();
        // Awaited by the parser's finish, which may never come (or come late): not an unhandled rejection.
        written.catch(() => {});
        writes.push(written);
      },
    );

    const tooMany = (what: string) => () => {
      refuse(res, 413, "payload_too_large", `the upload holds more than ${what}`);
      settle(false);
    };
    parser.on("filesLimit", tooMany(`${MAX_FILES} files`));
    parser.on("fieldsLimit", tooMany(`${MAX_FIELDS} fields`));
    parser.on("error", (error: Error) => {
      if (stopped) return;
      refuse(res, 400, "client_error", `malformed multipart body: ${error.message}`);
      settle(false);
    });
    parser.on("finish", () => {
      if (stopped) return;
      Promise.all(writes).then(
        () => settle(true),
        (error: unknown) => {
          refuse(res, 500, "internal_error", `the upload could not be received: ${(error as Error).message}`);
          settle(false);
        },
      );
    });

    req.on("data", countFields);
    req.once("error", onGone);
    res.once("close", onGone);
    req.pipe(parser);
  });
}

/**
 * The spec's `operations` with each file put at the paths `map` gives it (a file never received is
 * null there), or why the fields are not a request.
 */
function operationsOf(fields: Map<string, string>, files: Map<string, UploadedFile>): object | string {
  const parse = (name: string): unknown => {
    const text = fields.get(name);
    if (text === undefined) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return Symbol.for("invalid");
    }
  };
  const operations = parse("operations");
  if (operations === undefined) return 'the multipart field "operations" is missing';
  if (typeof operations !== "object" || operations === null || Object.keys(operations).length === 0) {
    return 'the multipart field "operations" must be a JSON object or a non-empty list';
  }
  const map = parse("map") ?? {};
  if (typeof map !== "object" || map === null || Array.isArray(map)) {
    return 'the multipart field "map" must be a JSON object';
  }
  for (const [key, paths] of Object.entries(map)) {
    if (!Array.isArray(paths) || !paths.every((p) => typeof p === "string")) {
      return `the multipart field "map" must give a list of paths for '${key.slice(0, 100)}'`;
    }
    for (const at of paths as string[]) {
      if (!place(operations, at.split("."), files.get(key) ?? null)) {
        return `the multipart map path '${at.slice(0, 200)}' is not in the operations`;
      }
    }
  }
  return operations;
}

/** Sets the value at `keys` inside `target`, through objects that exist (never into a prototype). */
function place(target: object, keys: string[], value: unknown): boolean {
  let node: unknown = target;
  for (const [i, key] of keys.entries()) {
    if (typeof node !== "object" || node === null) return false;
    if (key === "__proto__" || key === "constructor" || key === "prototype") return false;
    if (i === keys.length - 1) {
      (node as Record<string, unknown>)[key] = value;
      return true;
    }
    if (!Object.hasOwn(node, key)) return false;
    node = (node as Record<string, unknown>)[key];
  }
  return false;
}
