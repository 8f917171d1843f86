/**
 * Replica output as log lines (API.md section 8): a line is at most 16 KiB and ends with "[cut]" when
 * it was longer; over 200 lines per second per replica the rest are dropped and one line says how many;
 * control characters (but tab) become U+FFFD. Pure: the clock and the timer are handed in.
 */
import type { Clock } from "./clock.ts";

/** The longest line kept, in UTF-8 bytes ("[cut]" included). */
export const MAX_LINE_BYTES = 16 * 1024;
export const MAX_LINES_PER_SECOND = 200;
export const CUT_MARK = "[cut]";

// C0 controls but tab, and DEL. NUL in particular: PostgreSQL refuses it in text, and with it the whole
// batch of lines (other deployments' too) that LogWriter writes in one statement.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\u0000-\u0008\u000a-\u001f\u007f]/g;

export function droppedNotice(count: number): string {
  return `[${count} lines dropped]`;
}

/**
 * A line as it is stored: control characters replaced, and at most MAX_LINE_BYTES of UTF-8, ending with
 * "[cut]" when it had to be shortened (or `cut` says it was already). Applying it twice changes nothing.
 */
export function limitLine(text: string, cut = false): string {
  const clean = text.replace(CONTROL, "\uFFFD");
  if (!cut && Buffer.byteLength(clean) <= MAX_LINE_BYTES) return clean;
  return `${utf8Prefix(clean, MAX_LINE_BYTES - CUT_MARK.length)}${CUT_MARK}`;
}

/** The longest prefix of `text` that fits in `maxBytes` of UTF-8, never splitting a character. */
function utf8Prefix(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // Back off continuation bytes (10xxxxxx) to the start of the character they belong to.
  while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
  return bytes.toString("utf8", 0, end);
}

/**
 * Splits one output stream into lines as it is read. At most MAX_LINE_BYTES of a line are held: the
 * bytes after that are dropped until the next newline, so a line without end costs no memory.
 */
export class LineSplitter {
  private readonly held: Buffer;
  private length = 0;
  private overflow = false;

  constructor(private readonly maxBytes = MAX_LINE_BYTES) {
    this.held = Buffer.allocUnsafe(maxBytes);
  }

  /** The lines that `chunk` completes. */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      this.keep(chunk, start, newline === -1 ? chunk.length : newline);
      if (newline === -1) return lines;
      lines.push(this.take());
      start = newline + 1;
    }
  }

  /** The last line, when the stream ended without a newline. */
  end(): string[] {
    return this.length > 0 || this.overflow ? [this.take()] : [];
  }

  private keep(chunk: Uint8Array, from: number, to: number): void {
    const room = this.maxBytes - this.length;
    const n = Math.min(room, to - from);
    if (n > 0) {
      this.held.set(chunk.subarray(from, from + n), this.length);
      this.length += n;
    }
    if (to - from > n) this.overflow = true;
  }

  private take(): string {
    let end = this.length;
    // A CRLF line ending is a line ending, not a control character in the line.
    if (!this.overflow && end > 0 && this.held[end - 1] === 0x0d) end--;
    const line = limitLine(this.held.toString("utf8", 0, end), this.overflow);
    this.length = 0;
    this.overflow = false;
    return line;
  }
}

/**
 * At most `perSecond` lines in each second of the clock; the lines over it are counted, and the count is
 * reported once, at the start of the next second (or at the end of the output).
 */
export class LineRateLimit {
  private second = Number.NEGATIVE_INFINITY;
  private admitted = 0;
  private dropped = 0;

  constructor(
    private readonly clock: Clock,
    private readonly perSecond = MAX_LINES_PER_SECOND,
  ) {}

  /**
   * One line: whether it may be written, and the notice of an earlier second's drops to write before it.
   */
  admit(): { admitted: boolean; notice: string | null } {
    const notice = this.tick();
    if (this.admitted >= this.perSecond) {
      this.dropped++;
      return { admitted: false, notice };
    }
    this.admitted++;
    return { admitted: true, notice };
  }

  /** The notice of the drops of a second that has ended (null while it lasts, or without drops). */
  tick(): string | null {
    const second = Math.floor(this.clock.now() / 1000);
    if (second === this.second) return null;
    this.second = second;
    this.admitted = 0;
    return this.flush();
  }

  /** The notice of the drops so far, whether or not their second has ended (the output ended). */
  flush(): string | null {
    if (this.dropped === 0) return null;
    const notice = droppedNotice(this.dropped);
    this.dropped = 0;
    return notice;
  }

  /** Whether dropped lines wait for their notice. */
  hasDrops(): boolean {
    return this.dropped > 0;
  }

  /** Milliseconds until the current second ends. */
  msToNextSecond(): number {
    return 1000 - (this.clock.now() % 1000);
  }
}

export type OutputStream = "stdout" | "stderr";
/** Starts a timer; answers a function that cancels it. */
export type Schedule = (ms: number, fn: () => void) => () => void;

/**
 * One replica's output: a splitter per stream and one rate limit over both. Lines go to `emit`; the drop
 * notices are Hangar's own, on the "system" stream.
 */
export class ReplicaOutput {
  private readonly splitters = new Map<OutputStream, LineSplitter>();
  private readonly limit: LineRateLimit;
  private cancelTimer: (() => void) | null = null;

  constructor(
    clock: Clock,
    private readonly emit: (stream: OutputStream | "system", line: string) => void,
    private readonly schedule: Schedule,
    perSecond = MAX_LINES_PER_SECOND,
  ) {
    this.limit = new LineRateLimit(clock, perSecond);
  }

  write(stream: OutputStream, chunk: Uint8Array): void {
    for (const line of this.splitter(stream).push(chunk)) this.admit(stream, line);
  }

  /** The stream ended: its unfinished last line is a line. */
  end(stream: OutputStream): void {
    for (const line of this.splitter(stream).end()) this.admit(stream, line);
  }

  /** The process is gone: report what was dropped, and stop the timer. */
  close(): void {
    for (const stream of this.splitters.keys()) this.end(stream);
    this.cancelTimer?.();
    this.cancelTimer = null;
    const notice = this.limit.flush();
    if (notice !== null) this.emit("system", notice);
  }

  private splitter(stream: OutputStream): LineSplitter {
    let splitter = this.splitters.get(stream);
    if (!splitter) {
      splitter = new LineSplitter();
      this.splitters.set(stream, splitter);
    }
    return splitter;
  }

  private admit(stream: OutputStream, line: string): void {
    const { admitted, notice } = this.limit.admit();
    if (notice !== null) this.emit("system", notice);
    if (admitted) this.emit(stream, line);
    else if (!this.cancelTimer) this.armTimer();
  }

  /** Output may stop after a drop: the notice then comes from this timer, when the second ends. */
  private armTimer(): void {
    this.cancelTimer = this.schedule(this.limit.msToNextSecond(), () => {
      this.cancelTimer = null;
      const late = this.limit.tick();
      if (late !== null) this.emit("system", late);
      // Timers run on the event loop's cached clock, which a busy loop leaves behind the wall clock: one
      // may fire before the second it waits for has ended, and then waits again.
      else if (this.limit.hasDrops()) this.armTimer();
    });
  }
}
