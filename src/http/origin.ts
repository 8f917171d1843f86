import type { ServerResponse } from "node:http";
import { REQUEST_ID_HEADER, requestIdOf } from "./request-id.ts";

/**
 * Which web pages may talk to Hangar (API.md section 7). A browser names the
 * page behind a request in its Origin header; Hangar compares it with a fixed
 * list of its own origins, never with the Host header, which a page on a
 * DNS-rebound name (evil.example resolving to 127.0.0.1) controls.
 *
 * - none: no Origin (a client that is no browser, or a browser's same-origin
 *   GET or navigation): the session counts, as it does for
 * - own: Hangar's own pages.
 * - listed: an origin in HANGAR_CORS_ORIGINS: it may call the API (/graphql
 *   and the gateway) with a bearer key, and read the answers; its requests
 *   never count the session.
 * - foreign: any other page (and `null`, a malformed or a repeated Origin): no
 *   state-changing request, no WebSocket, no session, no readable answer.
 */
export type OriginKind = "none" | "own" | "listed" | "foreign";

export interface OriginSettings {
  publicUrl: string;
  /** The address Hangar listens on (HOST) and its port. */
  host: string;
  port: number;
  corsOrigins: readonly string[];
}

/** Loopback, or every interface (which includes loopback). */
export function listensOnLoopback(host: string): boolean {
  const h = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return (
    h === "localhost" ||
    h === "::1" ||
    h === "0.0.0.0" ||
    h === "::" ||
    /^127(\.[0-9]{1,3}){3}$/.test(h) ||
    /^::ffff:127(\.[0-9]{1,3}){3}$/.test(h)
  );
}

/**
 * The public URL's origin and, when Hangar listens on loopback, the names a
 * browser on the same machine reaches it by. A page there was served by
 * whatever listens on that port of this machine, i.e. by Hangar.
 */
export function ownOrigins(settings: Pick<OriginSettings, "publicUrl" | "host" | "port">): string[] {
  const origins = [new URL(settings.publicUrl).origin];
  if (listensOnLoopback(settings.host)) {
    for (const name of ["localhost", "127.0.0.1", "[::1]"]) origins.push(`http://${name}:${settings.port}`);
  }
  return [...new Set(origins)];
}

/** /graphql and the gateway: the paths other origins may call (with a key). Not Hangar's pages. */
export function isApiPath(pathname: string): boolean {
  return pathname === "/graphql" || pathname.startsWith("/models/");
}

/** Methods that change nothing (by HTTP's rules, and Hangar's). */
export function isSafeMethod(method: string | undefined): boolean {
  return method === "GET" || method === "HEAD" || method === "OPTIONS";
}

const ALLOW_METHODS = "GET, POST, OPTIONS";
const ALLOW_HEADERS = "authorization, content-type, graphql-require-preflight";
/** How long a browser may reuse a preflight's answer. */
const PREFLIGHT_MAX_AGE_S = 600;

/** Headers of an answer to a listed origin: it may read it. Never Allow-Credentials: keys only. */
export function corsHeaders(origin: string): Record<string, string> {
  return {
    "access-control-allow-origin": origin,
    "access-control-expose-headers": "x-hangar-deployment-id",
    vary: "Origin",
  };
}

/** Headers of the 204 that answers a listed origin's preflight. */
export function preflightHeaders(origin: string): Record<string, string> {
  return {
    ...corsHeaders(origin),
    "access-control-allow-methods": ALLOW_METHODS,
    "access-control-allow-headers": ALLOW_HEADERS,
    "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
  };
}

/** What to do with a request, given its method, path and Origin. */
export type OriginDecision =
  | { action: "preflight"; headers: Record<string, string> }
  | { action: "refuse"; error: string }
  | {
      action: "continue";
      kind: OriginKind;
      /** Whether the browser session may count for it. */
      session: boolean;
      /** To set on the answer (CORS for a listed origin, Vary on the API). */
      headers: Record<string, string>;
    };

function fixedContinue(kind: OriginKind): Record<"api" | "page", OriginDecision> {
  const session = kind === "none" || kind === "own";
  return {
    api: Object.freeze({ action: "continue", kind, session, headers: Object.freeze({ vary: "Origin" }) }),
    page: Object.freeze({ action: "continue", kind, session, headers: Object.freeze({}) }),
  };
}

/** The "continue" decisions that depend on nothing but the kind and whether the path is the API's (shared). */
const CONTINUE: Record<OriginKind, Record<"api" | "page", OriginDecision>> = {
  none: fixedContinue("none"),
  own: fixedContinue("own"),
  listed: fixedContinue("listed"),
  foreign: fixedContinue("foreign"),
};

export class OriginPolicy {
  readonly own: ReadonlySet<string>;
  readonly listed: ReadonlySet<string>;

  constructor(settings: OriginSettings) {
    this.own = new Set(ownOrigins(settings));
    this.listed = new Set(settings.corsOrigins.filter((origin) => !this.own.has(origin)));
  }

  /** Compared exactly as the browser serialises origins; anything else is foreign (fail closed). */
  classify(header: string | string[] | undefined): OriginKind {
    if (header === undefined) return "none";
    if (typeof header !== "string") return "foreign";
    if (this.own.has(header)) return "own";
    if (this.listed.has(header)) return "listed";
    return "foreign";
  }

  /** The rule for a plain HTTP request. */
  decide(
    method: string | undefined,
    pathname: string,
    header: string | string[] | undefined,
  ): OriginDecision {
    const kind = this.classify(header);
    const api = isApiPath(pathname);
    const listed = api && kind === "listed" && typeof header === "string";
    if (method === "OPTIONS" && api) {
      // Only a preflight carries an Origin; without one it is a plain "what may I do here?".
      if (kind === "none") return { action: "preflight", headers: { allow: ALLOW_METHODS } };
      if (listed) return { action: "preflight", headers: preflightHeaders(header) };
      return { action: "refuse", error: "this origin may not call Hangar's API (see HANGAR_CORS_ORIGINS)" };
    }
    // A listed origin counts as foreign on Hangar's own pages (sign-in, sign-out): only its pages use them.
    if (!isSafeMethod(method) && (kind === "foreign" || (kind === "listed" && !listed))) {
      return {
        action: "refuse",
        error: api
          ? "a page of this origin may not change anything in Hangar (see HANGAR_CORS_ORIGINS)"
          : "only Hangar's own pages may do this",
      };
    }
    if (listed) return { action: "continue", kind, session: false, headers: corsHeaders(header) };
    // The other outcomes are fixed: one shared object each, not one per request.
    return CONTINUE[kind][api ? "api" : "page"];
  }

  /** The rule for a WebSocket upgrade: another origin's page may open one only when listed, and then with a key. */
  decideUpgrade(header: string | string[] | undefined): { allowed: boolean; session: boolean } {
    const kind = this.classify(header);
    return { allowed: kind !== "foreign", session: kind === "none" || kind === "own" };
  }
}

/** The 403 of a refused origin, in the error shape of API.md section 3. */
export function originRefusal(error: string): { status: 403; error: string; error_code: "forbidden" } {
  return { status: 403, error, error_code: "forbidden" };
}

/**
 * Applies a decision to the answer: writes the preflight's or the refusal's
 * answer (true: answered), or sets the headers the answer will carry.
 */
export function applyOriginDecision(
  res: ServerResponse,
  decision: OriginDecision,
): decision is Exclude<OriginDecision, { action: "continue" }> {
  if (decision.action === "preflight") {
    res.writeHead(204, decision.headers);
    res.end();
    return true;
  }
  if (decision.action === "refuse") {
    const payload = JSON.stringify({ error: decision.error, error_code: "forbidden" });
    res.writeHead(403, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) });
    res.end(payload);
    return true;
  }
  for (const name in decision.headers) res.setHeader(name, decision.headers[name] as string);
  return false;
}

const ANSWER_HEADERS = Symbol("hangar.answerHeaders");
type WithAnswerHeaders = ServerResponse & { [ANSWER_HEADERS]?: Readonly<Record<string, string>> };

/**
 * applyOriginDecision for an answer whose every head is written with answerHead (the gateway's): the
 * decision's headers are kept for it instead of being set now. A header set with setHeader sends
 * Node's writeHead down its slow path (each header validated and stored twice, in a dictionary),
 * which costs the gateway more per request than its own routing.
 */
export function deferOriginHeaders(
  res: ServerResponse,
  decision: OriginDecision & { action: "continue" },
): void {
  (res as WithAnswerHeaders)[ANSWER_HEADERS] = decision.headers;
}

/**
 * The headers of an answer's writeHead with those deferOriginHeaders kept for it added, and the
 * request's id (http/request-id.ts) when it has one and `headers` does not hold it yet.
 */
export function answerHead<T extends Record<string, string | number>>(res: ServerResponse, headers: T): T {
  const deferred = (res as WithAnswerHeaders)[ANSWER_HEADERS];
  const id = requestIdOf(res);
  const withId: Record<string, string | number> = headers;
  if (id !== undefined && withId[REQUEST_ID_HEADER] === undefined) withId[REQUEST_ID_HEADER] = id;
  return deferred === undefined ? headers : Object.assign(headers, deferred);
}
