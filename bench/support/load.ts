/**
 * The benchmark's load generator, run in its own process (one per measurement):
 *
 *   node --import tsx bench/support/load.ts '<LoadOptions as JSON>'
 *
 * prints `start` and `end` lines on stdout when the measured window opens and
 * closes (so that the caller can read other processes' CPU time over it), then
 * one LoadResult as JSON.
 *
 * It drives keep-alive HTTP/1.1 connections over raw sockets with a request
 * prepared once, so that it costs as little CPU as possible on a machine it
 * shares with the servers it measures, and it times every request with
 * performance.now() (microseconds): the gateway's goal is stated in fractions
 * of a millisecond, which whole-millisecond histograms (autocannon's) cannot show.
 *
 * Two modes:
 * - saturated (rate null): closed loop, each connection sends its next request
 *   as soon as the previous answer has arrived;
 * - fixed rate: open loop, requests are due at an even schedule whether or not
 *   earlier ones were answered. A due request takes an idle connection, or
 *   waits for one, and that wait counts in its latency (no coordinated
 *   omission). How late the timer itself fired is reported apart (`lagMs`).
 */
import net from "node:net";
import { performance } from "node:perf_hooks";
import { pathToFileURL } from "node:url";
import { preamble } from "../../src/runtime/replica-channel.ts";

export interface LoadOptions {
  host: string;
  port: number;
  /** A replica's channel instead of host:port: its Unix socket and the secret every connection opens with. */
  channel?: { socketPath: string; secret: string };
  path: string;
  headers: Record<string, string>;
  body: string;
  /** Keep-alive connections, opened before the run. */
  connections: number;
  /** Requests per second; null = as fast as the connections go. */
  rate: number | null;
  /** Load before the measured window, with the same settings, not counted. */
  warmupMs: number;
  /** The measured window. */
  durationMs: number;
  /** A request unanswered this long counts as an error and its connection is replaced. */
  timeoutMs: number;
}

export interface Percentiles {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
  mean: number;
}

export interface LoadResult {
  /** 2xx answers received in the measured window. */
  requests: number;
  /** Other answers received in the measured window. */
  non2xx: number;
  /** Connection errors and timeouts (whole run). */
  errors: number;
  seconds: number;
  /** 2xx answers per second of the measured window. */
  rps: number;
  /** Latency of the 2xx answers, in milliseconds. */
  latencyMs: Percentiles;
  /** Fixed rate only: how late the generator's timer dispatched requests, in milliseconds. */
  lagMs: Percentiles | null;
  /** Fixed rate only: requests that found no idle connection and had to wait for one. */
  queued: number;
  /** CPU time the generator itself used in the measured window, in milliseconds. */
  cpuMs: number;
  /** The first answer's status and body, to check that the target answered what it should. */
  sample: { status: number; body: string } | null;
}

/** A growable array of float samples. */
class Samples {
  private data = new Float64Array(1 << 16);
  private n = 0;

  add(value: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = value;
  }

  get count(): number {
    return this.n;
  }

  summary(): Percentiles {
    const sorted = this.data.subarray(0, this.n).sort();
    const n = sorted.length;
    if (n === 0)
      return { p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, p999: Number.NaN, max: 0, mean: 0 };
    const at = (q: number) => sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))] as number;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += sorted[i] as number;
    return {
      p50: at(0.5),
      p90: at(0.9),
      p99: at(0.99),
      p999: at(0.999),
      max: sorted[n - 1] as number,
      mean: sum / n,
    };
  }
}

const MAX_ERRORS = 1000;
const HEADER_END = Buffer.from("\r\n\r\n");
const CONTENT_LENGTH = /\r\ncontent-length:[ \t]*(\d+)/i;

type OnAnswer = (conn: Connection, status: number, body: Buffer) => void;
type OnFailure = (conn: Connection, error: Error) => void;

/**
 * One keep-alive connection carrying one request at a time. Answers must have
 * a Content-Length (every server measured here sends one).
 */
class Connection {
  socket: net.Socket;
  busy = false;
  /** When the request in flight was due (fixed rate) or sent (saturated). */
  startedAt = 0;
  private pending: Buffer | null = null;
  private bodyStart = -1;
  private total = -1;
  private status = 0;

  constructor(
    private readonly options: LoadOptions,
    private readonly request: Buffer,
    private readonly onAnswer: OnAnswer,
    private readonly onFailure: OnFailure,
  ) {
    this.socket = this.open();
  }

  private open(): net.Socket {
    const { channel } = this.options;
    const socket = channel
      ? net.connect({ path: channel.socketPath })
      : net.connect({ host: this.options.host, port: this.options.port, noDelay: true });
    // Sent before any request (writes go out in order): the runner reads it first, then HTTP.
    if (channel) socket.write(preamble(channel.secret));
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", () => {});
    socket.on("close", () => {
      if (this.socket !== socket) return;
      this.reset();
      if (this.busy) {
        this.busy = false;
        this.onFailure(this, new Error("connection closed with a request in flight"));
      }
    });
    return socket;
  }

  connected(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("error", reject);
    });
  }

  send(startedAt: number): void {
    this.busy = true;
    this.startedAt = startedAt;
    if (this.socket.destroyed) this.socket = this.open();
    this.socket.write(this.request);
  }

  /** Drops the connection (after a timeout) and opens a new one for the next request. */
  replace(): void {
    const old = this.socket;
    this.reset();
    this.busy = false;
    this.socket = this.open();
    old.destroy();
  }

  close(): void {
    this.socket.destroy();
  }

  private reset(): void {
    this.pending = null;
    this.bodyStart = -1;
    this.total = -1;
  }

  private onData(chunk: Buffer): void {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    if (this.total < 0) {
      const end = buf.indexOf(HEADER_END);
      if (end < 0) {
        this.pending = buf;
        return;
      }
      const head = buf.toString("latin1", 0, end);
      const length = CONTENT_LENGTH.exec(head);
      if (!length) {
        this.protocolError(`an answer without content-length: ${head.slice(0, 200)}`);
        return;
      }
      this.status = Number(head.slice(9, 12));
      this.bodyStart = end + HEADER_END.length;
      this.total = this.bodyStart + Number(length[1]);
    }
    if (buf.length < this.total) {
      this.pending = buf;
      return;
    }
    if (buf.length > this.total) {
      this.protocolError("more bytes than one answer (nothing is pipelined)");
      return;
    }
    const body = buf.subarray(this.bodyStart, this.total);
    const status = this.status;
    this.reset();
    this.busy = false;
    this.onAnswer(this, status, body);
  }

  private protocolError(message: string): void {
    this.busy = false;
    this.reset();
    this.socket.destroy();
    this.onFailure(this, new Error(message));
  }
}

function requestBytes(options: LoadOptions): Buffer {
  const body = Buffer.from(options.body);
  const lines = [`POST ${options.path} HTTP/1.1`, `host: ${options.host}:${options.port}`];
  for (const [name, value] of Object.entries(options.headers)) lines.push(`${name}: ${value}`);
  lines.push(`content-length: ${body.length}`);
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1"), body]);
}

export async function runLoad(
  options: LoadOptions,
  onWindow: (edge: "start" | "end") => void = () => {},
): Promise<LoadResult> {
  const request = requestBytes(options);
  const latency = new Samples();
  const lag = new Samples();
  let requests = 0;
  let non2xx = 0;
  let errors = 0;
  let queued = 0;
  let sample: LoadResult["sample"] = null;
  let lastError: Error | null = null;
  let failed: Error | null = null;
  let stopNow: () => void = () => {};

  // Set when the connections are open.
  let measureStart = Number.POSITIVE_INFINITY;
  let measureEnd = Number.POSITIVE_INFINITY;
  let sending = false;
  const idle: Connection[] = [];
  /** Fixed rate: start times of due requests that wait for a connection. */
  const waiting: number[] = [];
  let waitingHead = 0;

  const next = (conn: Connection, now: number) => {
    if (!sending) {
      idle.push(conn);
      return;
    }
    if (options.rate === null) {
      conn.send(now);
    } else if (waitingHead < waiting.length) {
      conn.send(waiting[waitingHead++] as number);
      if (waitingHead === waiting.length) {
        waiting.length = 0;
        waitingHead = 0;
      }
    } else {
      idle.push(conn);
    }
  };

  const onAnswer: OnAnswer = (conn, status, body) => {
    const now = performance.now();
    if (sample === null) sample = { status, body: body.toString("utf8") };
    if (now >= measureStart && now <= measureEnd) {
      if (status >= 200 && status < 300) {
        requests++;
        latency.add(now - conn.startedAt);
      } else {
        non2xx++;
      }
    }
    next(conn, now);
  };
  const onFailure: OnFailure = (conn, error) => {
    errors++;
    lastError = error;
    // A target that is down: stop rather than spin on reconnecting.
    if (errors >= MAX_ERRORS) failed = error;
    if (failed) {
      sending = false;
      stopNow();
    }
    next(conn, performance.now());
  };

  const connections = Array.from(
    { length: options.connections },
    () => new Connection(options, request, onAnswer, onFailure),
  );
  await Promise.all(connections.map((c) => c.connected()));
  idle.push(...connections);

  const start = performance.now();
  measureStart = start + options.warmupMs;
  measureEnd = measureStart + options.durationMs;
  sending = true;

  // Requests unanswered for too long: count them and replace their connection.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const conn of connections) {
      if (conn.busy && now - conn.startedAt > options.timeoutMs) {
        errors++;
        lastError = new Error(`no answer within ${options.timeoutMs} ms`);
        conn.replace();
        next(conn, now);
      }
    }
  }, 250);

  let timer: NodeJS.Timeout | null = null;
  if (options.rate === null) {
    for (const conn of idle.splice(0)) conn.send(performance.now());
  } else {
    const interval = 1000 / options.rate;
    let due = start;
    const tick = () => {
      const now = performance.now();
      if (now >= measureEnd) return;
      for (; due <= now; due += interval) {
        const measured = due >= measureStart;
        if (measured) lag.add(now - due);
        const conn = idle.pop();
        if (conn) {
          conn.send(now);
        } else {
          if (measured) queued++;
          waiting.push(now);
        }
      }
      timer = setTimeout(tick, Math.max(0, due - performance.now()));
    };
    tick();
  }

  let cpuAtStart = process.cpuUsage();
  const windowStart = setTimeout(() => {
    cpuAtStart = process.cpuUsage();
    onWindow("start");
  }, options.warmupMs);
  await new Promise<void>((resolve) => {
    const end = setTimeout(resolve, measureEnd - performance.now());
    stopNow = () => {
      clearTimeout(end);
      resolve();
    };
  });
  sending = false;
  const cpu = process.cpuUsage(cpuAtStart);
  onWindow("end");
  clearTimeout(windowStart);
  if (timer) clearTimeout(timer);
  // Let the requests in flight finish (their answers are past the window, not counted).
  const drainUntil = performance.now() + Math.min(options.timeoutMs, 5_000);
  while (connections.some((c) => c.busy) && performance.now() < drainUntil) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  clearInterval(sweep);
  for (const conn of connections) conn.close();

  if (failed) throw new Error(`${errors} errors, the last: ${(failed as Error).message}`);
  if (requests === 0 && lastError) throw lastError;
  const seconds = options.durationMs / 1000;
  return {
    requests,
    non2xx,
    errors,
    seconds,
    rps: requests / seconds,
    latencyMs: latency.summary(),
    lagMs: options.rate === null ? null : lag.summary(),
    queued,
    cpuMs: (cpu.user + cpu.system) / 1000,
    sample,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const options = JSON.parse(process.argv[2] ?? "") as LoadOptions;
  runLoad(options, (edge) => process.stdout.write(`${edge}\n`)).then(
    (result) => {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      process.exit(0);
    },
    (error: unknown) => {
      process.stderr.write(`load generator: ${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    },
  );
}
