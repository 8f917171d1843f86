import net from "node:net";

/** One HTTP response read off a raw connection. */
export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface RawExchange {
  /** Every byte the server sent. */
  raw: Buffer;
  /** The responses in `raw`, in order (a trailing incomplete one is left out). */
  responses: RawResponse[];
  /** Bytes after the last complete response (a cut-off answer or something that is not HTTP). */
  rest: Buffer;
  /** The server closed (or reset) the connection before the deadline. */
  closed: boolean;
  /** A socket error other than the server closing, e.g. ECONNRESET. */
  error: string | null;
}

/**
 * Parses consecutive HTTP/1.1 responses (Content-Length or chunked bodies, none
 * for 1xx/204/304). Stops at the first one it cannot read whole.
 */
export function parseResponses(data: Buffer, headRequests = 0): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let at = 0;
  let heads = headRequests;
  for (;;) {
    const end = data.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const lines = data.subarray(at, end).toString("latin1").split("\r\n");
    const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? "");
    if (!match) break;
    const status = Number(match[1]);
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let cursor = end + 4;
    let body: Buffer = Buffer.alloc(0);
    const bodiless = status < 200 || status === 204 || status === 304 || heads > 0;
    if (heads > 0 && status >= 200) heads--;
    if (!bodiless && headers["transfer-encoding"]?.toLowerCase().includes("chunked")) {
      const chunks: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = data.indexOf("\r\n", cursor);
        if (lineEnd < 0) break;
        const size = Number.parseInt(data.subarray(cursor, lineEnd).toString("latin1"), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          const trailerEnd = data.indexOf("\r\n\r\n", lineEnd);
          if (trailerEnd < 0) break;
          cursor = trailerEnd + 4;
          complete = true;
          break;
        }
        if (data.length < lineEnd + 2 + size + 2) break;
        chunks.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
        cursor = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(chunks);
    } else if (!bodiless && headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      if (data.length < cursor + length) break;
      body = data.subarray(cursor, cursor + length);
      cursor += length;
    } else if (!bodiless) {
      // Read-until-close body: everything that is left.
      body = data.subarray(cursor);
      cursor = data.length;
    }
    responses.push({ status, headers, body });
    at = cursor;
  }
  return { responses, rest: data.subarray(at) };
}

export interface RawOptions {
  /** Give up (and destroy the socket) after this long. */
  deadlineMs?: number;
  /** Finish as soon as this many responses have arrived. */
  expect?: number;
  /** Pause between writes, so that the parts arrive as separate reads. */
  gapMs?: number;
  /** Half-close once this many responses are in (0: right after writing). */
  endAfter?: number;
  /** Half-close after this long with nothing received: lets the server see the end of what it waits for. */
  idleEndMs?: number;
  /** How many of the requests are HEADs (their answers have no body). */
  heads?: number;
  /** Hold the last part until nothing has arrived for this long (so the server has acted on the rest). */
  holdLastMs?: number;
}

/**
 * Opens a connection, writes `parts` (one write each), and reads until the
 * server closes it, `expect` responses have arrived, or the deadline passes.
 * Never rejects.
 */
export function rawExchange(
  port: number,
  parts: (string | Buffer)[],
  opts: RawOptions = {},
): Promise<RawExchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | null = null;
    let finished = false;
    let written = false;
    let ended = false;
    let idle: NodeJS.Timeout | null = null;
    let quiet: (() => void) | null = null;
    let quietTimer: NodeJS.Timeout | null = null;
    const armQuiet = () => {
      if (!quiet) return;
      if (quietTimer) clearTimeout(quietTimer);
      quietTimer = setTimeout(() => quiet?.(), opts.holdLastMs);
    };
    const socket = net.connect(port, "127.0.0.1");
    const parsed = () => parseResponses(Buffer.concat(chunks), opts.heads ?? 0);
    const end = () => {
      if (ended || finished) return;
      ended = true;
      socket.end();
    };
    const armIdle = () => {
      if (opts.idleEndMs === undefined || !written || ended) return;
      if (idle) clearTimeout(idle);
      idle = setTimeout(end, opts.idleEndMs);
    };
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      if (idle) clearTimeout(idle);
      if (quietTimer) clearTimeout(quietTimer);
      socket.destroy();
      const raw = Buffer.concat(chunks);
      const { responses, rest } = parseResponses(raw, opts.heads ?? 0);
      resolve({ raw, responses, rest, closed, error });
    };
    const deadline = setTimeout(() => finish(false), opts.deadlineMs ?? 5_000);
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      armIdle();
      armQuiet();
      if (opts.expect === undefined && opts.endAfter === undefined) return;
      const count = parsed().responses.length;
      if (opts.expect !== undefined && count >= opts.expect) finish(false);
      else if (opts.endAfter !== undefined && count >= opts.endAfter && written) end();
    });
    socket.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.on("close", () => finish(true));
    socket.once("connect", async () => {
      for (const [i, part] of parts.entries()) {
        if (i > 0 && opts.gapMs) await new Promise((r) => setTimeout(r, opts.gapMs));
        if (i > 0 && i === parts.length - 1 && opts.holdLastMs !== undefined) {
          await new Promise<void>((r) => {
            quiet = r;
            armQuiet();
          });
          quiet = null;
        }
        if (finished || socket.destroyed) return;
        socket.write(part);
      }
      written = true;
      if (opts.endAfter !== undefined && parsed().responses.length >= opts.endAfter) end();
      armIdle();
    });
  });
}
