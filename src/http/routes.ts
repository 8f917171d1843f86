/**
 * Which HTTP request goes where, and what it must bring: origin rules and CORS first, the sign-in
 * pages, /graphql (a key or the browser's session; the POST preflight rule; body limits), the
 * gateway's paths (a bearer key), and 404 for the rest.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { DATABASE_UNAVAILABLE_MESSAGE, isDatabaseUnavailable } from "../db/unavailable.ts";
import { type Access, mayReadMetrics, refusalMessage } from "../domain/access.ts";
import {
  MEMBER_SECRET_HEADER,
  type MemberSecret,
  PEER_PATH_PREFIX,
  parsePeerPath,
} from "../gateway/peers.ts";
import { type BodyLimits, readGraphqlBody } from "./body-limit.ts";
import type { Credentials } from "./credentials.ts";
import type { GraphqlOverHttp } from "./graphql-http.ts";
import { answerHead, applyOriginDecision, deferOriginHeaders, type OriginPolicy } from "./origin.ts";
import { assignRequestId, REQUEST_ID_HEADER } from "./request-id.ts";
import { targetOf } from "./request-target.ts";
import { type BrowserSignIn, isSignInPath, redirect } from "./sign-in.ts";

export function json(res: ServerResponse, status: number, body: unknown): void {
  const payload = JSON.stringify(body);
  res.writeHead(
    status,
    answerHead(res, { "content-type": "application/json", "content-length": Buffer.byteLength(payload) }),
  );
  res.end(payload);
}

/** Answers the request and drops whatever body it still sends. */
function refuse(req: IncomingMessage, res: ServerResponse, status: number, body: unknown): void {
  req.resume();
  json(res, status, body);
}

const UNAUTHORIZED = { error: "missing or wrong API key", error_code: "unauthorized" };
/** /metrics of a server started with HANGAR_METRICS off: said so, so a scraper's owner sees why. */
const METRICS_OFF = {
  error: "metrics are off on this server: it was started with HANGAR_METRICS off (0, off or false)",
  error_code: "metrics_off",
};

/** Where the gateway's paths go, with the access their bearer key gives. */
export type GatewayHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
  access: Access,
) => Promise<void> | void;

/** Where requests handed over by another member go (gateway/peers.ts), and the secret they must bring. */
export interface PeerTargets {
  secret: MemberSecret;
  handle(req: IncomingMessage, res: ServerResponse, deploymentId: string): Promise<void> | void;
}

export interface RouteTargets {
  origins: OriginPolicy;
  browser: BrowserSignIn;
  credentials: Credentials;
  graphql: GraphqlOverHttp;
  gateway: GatewayHandler;
  /** Null on the embedded database: no other member can hand anything over. */
  peers: PeerTargets | null;
  bodyLimits: BodyLimits;
  /** GET /metrics (API.md section 11): the Prometheus exposition, or null when off (HANGAR_METRICS=0). */
  metrics?: { exposition(): Promise<{ contentType: string; body: string }> } | null;
}

/**
 * The handler for every request once Hangar is ready (listener.ts answers before that). A gateway
 * request of a key seen in the last seconds is routed without a promise of its own (the gateway's
 * is returned as it is); a failure is answered by `rescue` when it is the database's.
 */
export interface RequestRouter {
  (req: IncomingMessage, res: ServerResponse): Promise<void> | undefined;
  /** Answers a request that failed because the database is away (true), else leaves it (false). */
  rescue(req: IncomingMessage, res: ServerResponse, error: unknown): boolean;
}

export function routes(to: RouteTargets): RequestRouter {
  const route = routeOnce(to);
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    try {
      return route(req, res) ?? undefined;
    } catch (error) {
      return Promise.reject(error);
    }
  };
  return Object.assign(handle, { rescue: databaseAway });
}

/** A credential or route that had to be read while the database is away (API.md section 10). */
function databaseAway(req: IncomingMessage, res: ServerResponse, error: unknown): boolean {
  if (!isDatabaseUnavailable(error) || res.headersSent) return false;
  const body =
    targetOf(req).pathname === "/graphql"
      ? {
          errors: [{ message: DATABASE_UNAVAILABLE_MESSAGE, extensions: { code: "DATABASE_UNAVAILABLE" } }],
        }
      : { error: DATABASE_UNAVAILABLE_MESSAGE, error_code: "database_unavailable" };
  refuse(req, res, 503, body);
  return true;
}

function routeOnce(to: RouteTargets): (req: IncomingMessage, res: ServerResponse) => Promise<void> | void {
  return (req, res) => {
    const url = targetOf(req);
    const requestId = assignRequestId(req, res);
    // Origin rules and CORS before any credential (http/origin.ts): preflights, other sites' pages.
    const origin = to.origins.decide(req.method, url.pathname, req.headers.origin);
    if (origin.action === "continue" && url.pathname.startsWith("/models/")) {
      // Every answer of the gateway writes its head with answerHead, which adds these.
      deferOriginHeaders(res, origin);
      // The key's cached answer when it has one, else the credential store's.
      const known = to.credentials.bearerNow(req.headers.authorization);
      if (known === undefined) return gatewayRequest(to, req, res, url.pathname);
      if (!known) return refuse(req, res, 401, UNAUTHORIZED);
      return to.gateway(req, res, url.pathname, known);
    }
    // Answers other than the gateway's get it here (the gateway's heads add it: answerHead).
    if (!url.pathname.startsWith(PEER_PATH_PREFIX)) res.setHeader(REQUEST_ID_HEADER, requestId);
    if (applyOriginDecision(res, origin)) return void req.resume();
    if (isSignInPath(url.pathname)) return to.browser.handle(req, res, url.pathname, origin.session);
    if (url.pathname === "/graphql") return graphqlRequest(to, req, res, origin.session);
    if (url.pathname === "/metrics") {
      return to.metrics ? metricsRequest(to.metrics, to, req, res) : refuse(req, res, 404, METRICS_OFF);
    }
    if (to.peers && url.pathname.startsWith(PEER_PATH_PREFIX)) {
      if (!to.peers.secret.admits(req.headers[MEMBER_SECRET_HEADER])) {
        return refuse(req, res, 401, { error: "missing or wrong member secret", error_code: "unauthorized" });
      }
      const deploymentId = parsePeerPath(url.pathname);
      if (deploymentId !== null) return to.peers.handle(req, res, deploymentId);
    }
    refuse(req, res, 404, { error: `nothing at ${url.pathname}`, error_code: "not_found" });
  };
}

async function graphqlRequest(
  to: RouteTargets,
  req: IncomingMessage,
  res: ServerResponse,
  session: boolean,
): Promise<void> {
  const wantsPage = req.method === "GET" && (req.headers.accept ?? "").includes("text/html");
  // A bearer key, else (on Hangar's own origin only) the browser's session.
  const access = await to.browser.requestAccess(req, session);
  if (!access) {
    if (!wantsPage) return refuse(req, res, 401, UNAUTHORIZED);
    req.resume();
    return redirect(res, "/sign-in");
  }
  if (req.method === "POST") {
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/json" && req.headers["graphql-require-preflight"] === undefined) {
      return refuse(req, res, 403, {
        error: "a POST that is not application/json must carry a graphql-require-preflight header",
        error_code: "forbidden",
      });
    }
    // The body is read here within its limits (413 or INVALID_INPUT past them); yoga gets it in req.body.
    if (!(await readGraphqlBody(req, res, to.bodyLimits))) return;
  }
  return to.graphql.serve(req, res, access, wantsPage);
}

/** A gateway request whose key must be looked up first. */
async function gatewayRequest(
  to: RouteTargets,
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
): Promise<void> {
  const access = await to.credentials.bearer(req.headers.authorization);
  if (!access) return refuse(req, res, 401, UNAUTHORIZED);
  return to.gateway(req, res, pathname, access);
}

/** GET /metrics: for a bearer key that may read every model (domain/access.ts mayReadMetrics). */
async function metricsRequest(
  metrics: NonNullable<RouteTargets["metrics"]>,
  to: RouteTargets,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    res.setHeader("allow", "GET, HEAD");
    return refuse(req, res, 405, { error: "/metrics takes GET", error_code: "method_not_allowed" });
  }
  const access = await to.credentials.bearer(req.headers.authorization);
  if (!access) return refuse(req, res, 401, UNAUTHORIZED);
  if (!mayReadMetrics(access)) {
    return refuse(req, res, 403, {
      error: refusalMessage(
        access,
        "read /metrics (it takes a VIEWER, DEPLOYER or ADMIN key for every model)",
      ),
      error_code: "forbidden",
    });
  }
  const { contentType, body } = await metrics.exposition();
  req.resume();
  res.writeHead(200, { "content-type": contentType, "content-length": Buffer.byteLength(body) });
  res.end(req.method === "HEAD" ? undefined : body);
}
