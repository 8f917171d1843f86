import { type IncomingMessage, type ServerResponse, STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";

/**
 * What Hangar accepts as a request before any handler sees it (API.md section 8):
 * a request it cannot parse gets a 4xx here, so no handler further in has to
 * cope with (or throw on) a hostile target, Host header or upgrade request.
 */

/** An origin-form target, split but not decoded (the gateway decodes its own segments). */
export interface RequestTarget {
  pathname: string;
  /** "" or "?..." as sent. */
  search: string;
}

/** A 4xx answer, in the JSON error shape of API.md section 3. */
export interface Refusal {
  status: number;
  error: string;
  error_code: string;
  headers?: Record<string, string>;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

/** Longer targets get 414 (the common 8 KiB request-line budget; Hangar's own paths are short). */
export const MAX_TARGET_LENGTH = 8192;

const GRAPHQL_PATH = "/graphql";
const GRAPHQL_METHODS = ["GET", "POST", "OPTIONS"];

function refusal(status: number, error: string, error_code = "client_error"): Refusal {
  return { status, error, error_code };
}

// RFC 3986 pchar (unreserved, sub-delims, ":" "@", pct-encoded) and "/". Everything
// else is refused in the path: "\" (URL parsers read it as "/"), quotes, brackets,
// spaces, non-ASCII (which must come percent-encoded).
const PATH_CHARS = /^[A-Za-z0-9\-._~!$&'()*+,;=:@%/]*$/;
// The query is handed to URLSearchParams, which copes with any visible ASCII; "#" would be
// a fragment, which a request never carries.
const QUERY_CHARS = /^[\x21-\x22\x24-\x7e]*$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;
// Decoded control characters would reach IDs and names (and PostgreSQL refuses NUL).
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
const CONTROL = /[\x00-\x1f\x7f]/;

/** Parses a raw request target (`req.url`) as origin-form, or says why it is refused. */
export function parseRequestTarget(raw: string | undefined): Checked<RequestTarget> {
  if (raw === undefined || raw === "") return { ok: false, refusal: refusal(400, "missing request target") };
  if (raw.length > MAX_TARGET_LENGTH) {
    return {
      ok: false,
      refusal: refusal(414, `request target longer than ${MAX_TARGET_LENGTH} characters`, "uri_too_long"),
    };
  }
  if (!raw.startsWith("/") || raw.startsWith("//")) {
    // Absolute-form (`http://evil/`), authority-form, `*`, and `//host` (read as a host by URL parsers).
    return { ok: false, refusal: refusal(400, "request target must be a path starting with a single /") };
  }
  const q = raw.indexOf("?");
  const pathname = q < 0 ? raw : raw.slice(0, q);
  const search = q < 0 ? "" : raw.slice(q);
  if (!PATH_CHARS.test(pathname) || !QUERY_CHARS.test(search.slice(1))) {
    return {
      ok: false,
      refusal: refusal(400, "request target holds characters that must be percent-encoded"),
    };
  }
  if (BAD_ESCAPE.test(raw)) return { ok: false, refusal: refusal(400, "malformed percent-escape") };
  for (const segment of pathname.split("/")) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(segment);
    } catch {
      return { ok: false, refusal: refusal(400, "percent-escape that is not UTF-8") };
    }
    if (CONTROL.test(decoded)) {
      return { ok: false, refusal: refusal(400, "request path holds control characters") };
    }
    // Dot segments mean different paths to different parsers; Hangar's clients never send them.
    if (decoded === "." || decoded === "..") {
      return { ok: false, refusal: refusal(400, "request path holds a . or .. segment") };
    }
  }
  return { ok: true, value: { pathname, search } };
}

// A reg-name or IPv4 address, or a bracketed IPv6 address, with an optional port.
const HOST = /^(?:[A-Za-z0-9\-._~!$&'()*+,;=]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$/;

/**
 * Checks a Host header. Yoga's HTTP adapter builds a URL from it and answers
 * 500 when that fails, so a bad one is refused here. No Host (HTTP/1.0) is fine;
 * Node refuses HTTP/1.1 without one.
 */
export function checkHost(host: string | undefined): Refusal | null {
  if (host === undefined || host === "") return null;
  if (!HOST.test(host)) return refusal(400, "malformed Host header");
  const port = /:([0-9]+)$/.exec(host)?.[1];
  if (port !== undefined && Number(port) > 65535) return refusal(400, "malformed Host header");
  try {
    new URL(`http://${host}/`);
  } catch {
    return refusal(400, "malformed Host header");
  }
  return null;
}

/**
 * The methods a path takes. /graphql takes GET, POST and OPTIONS (CORS preflight);
 * the gateway answers its own 405s (after its 404s), other paths their 404.
 */
export function checkMethod(method: string | undefined, pathname: string): Refusal | null {
  if (pathname === GRAPHQL_PATH && !GRAPHQL_METHODS.includes(method ?? "")) {
    return {
      ...refusal(405, `${GRAPHQL_PATH} takes ${GRAPHQL_METHODS.join(", ")}`, "method_not_allowed"),
      headers: { allow: GRAPHQL_METHODS.join(", ") },
    };
  }
  return null;
}

/** Where checkRequest and checkUpgrade leave a request's target for targetOf (a property: no WeakMap write per request). */
const TARGET = Symbol("hangar.requestTarget");
type WithTarget = IncomingMessage & { [TARGET]?: RequestTarget };

/**
 * Answers of a pure check, remembered per input: clients send the same few targets and Host values
 * over and over. Bounded (emptied when full), so that made-up values cannot grow it.
 */
class Memo<T> {
  private readonly answers = new Map<string, T>();
  /** The last input and its answer: a string compare instead of hashing a new string, most of the time. */
  private lastInput: string | null = null;
  private lastAnswer: T | undefined;

  constructor(
    private readonly check: (input: string) => T,
    private readonly max = 1_000,
  ) {}

  get(input: string): T {
    if (input === this.lastInput) return this.lastAnswer as T;
    let answer = this.answers.get(input);
    if (answer === undefined) {
      answer = this.check(input);
      if (this.answers.size >= this.max) this.answers.clear();
      this.answers.set(input, answer);
    }
    this.lastInput = input;
    this.lastAnswer = answer;
    return answer;
  }
}

const parsedTargets = new Memo(parseRequestTarget);
const checkedHosts = new Memo(checkHost);

/** Every check a plain request gets before routing; remembers the target for targetOf. */
export function checkRequest(req: IncomingMessage): Checked<RequestTarget> {
  const target = req.url === undefined ? parseRequestTarget(undefined) : parsedTargets.get(req.url);
  if (!target.ok) return target;
  const host = req.headers.host;
  const bad =
    (host === undefined ? null : checkedHosts.get(host)) ?? checkMethod(req.method, target.value.pathname);
  if (bad) return { ok: false, refusal: bad };
  (req as WithTarget)[TARGET] = target.value;
  return target;
}

/**
 * The target of a request that passed checkRequest or checkUpgrade. Never throws:
 * an unchecked, unparseable one comes back with an empty path, which routes nowhere.
 */
export function targetOf(req: IncomingMessage): RequestTarget {
  const known = (req as WithTarget)[TARGET];
  if (known) return known;
  const parsed = parseRequestTarget(req.url);
  return parsed.ok ? parsed.value : { pathname: "", search: "" };
}

// What ws accepts as a key: 16 bytes, base64 (RFC 6455 section 4.2.1).
const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/;

/** Checks an upgrade request: only a WebSocket handshake on /graphql is taken. */
export function checkUpgrade(req: IncomingMessage): Refusal | null {
  const target = parseRequestTarget(req.url);
  if (!target.ok) return target.refusal;
  const host = checkHost(req.headers.host);
  if (host) return host;
  if (target.value.pathname !== GRAPHQL_PATH) {
    return refusal(404, `no WebSocket endpoint at ${target.value.pathname}`, "not_found");
  }
  const upgrade = req.headers.upgrade;
  if (upgrade === undefined || upgrade.trim().toLowerCase() !== "websocket") {
    return refusal(400, "only an upgrade to websocket is supported");
  }
  if (req.method !== "GET") {
    return {
      ...refusal(405, "a WebSocket handshake is a GET", "method_not_allowed"),
      headers: { allow: "GET" },
    };
  }
  if (req.headers["sec-websocket-version"] !== "13") {
    return {
      ...refusal(426, "Sec-WebSocket-Version must be 13", "upgrade_required"),
      headers: { "sec-websocket-version": "13" },
    };
  }
  const key = req.headers["sec-websocket-key"];
  if (key === undefined || !WEBSOCKET_KEY.test(key)) {
    return refusal(400, "missing or malformed Sec-WebSocket-Key");
  }
  (req as WithTarget)[TARGET] = target.value;
  return null;
}

function errorBody(refused: Refusal): string {
  return JSON.stringify({ error: refused.error, error_code: refused.error_code });
}

/** Answers a refused request on its response object (the connection stays usable). */
export function sendRefusal(res: ServerResponse, refused: Refusal): void {
  const payload = errorBody(refused);
  res.writeHead(refused.status, {
    ...refused.headers,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** How long a refused socket may take to take its answer before it is cut. */
const SOCKET_LINGER_MS = 5_000;

/**
 * Writes a minimal HTTP error response on a raw socket (an upgrade or a request
 * Node's parser gave up on) and closes it. Never throws: a socket the client has
 * already reset is just destroyed.
 */
export function refuseOnSocket(socket: Duplex, refused: Refusal): void {
  // After an upgrade Node leaves the socket with no error listener: without this,
  // a client resetting it now would be an uncaught 'error' event.
  socket.on("error", () => socket.destroy());
  if (!socket.writable || socket.destroyed) {
    socket.destroy();
    return;
  }
  const payload = errorBody(refused);
  const lines = [
    `HTTP/1.1 ${refused.status} ${STATUS_CODES[refused.status] ?? "Error"}`,
    "Connection: close",
    "Content-Type: application/json",
    `Content-Length: ${Buffer.byteLength(payload)}`,
    ...Object.entries(refused.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
  ];
  const linger = setTimeout(() => socket.destroy(), SOCKET_LINGER_MS);
  linger.unref();
  socket.once("close", () => clearTimeout(linger));
  socket.end(`${lines.join("\r\n")}\r\n\r\n${payload}`, () => socket.destroy());
}
