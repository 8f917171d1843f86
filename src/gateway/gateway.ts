import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Dispatcher } from "undici";
import type { Config } from "../config.ts";
import { type Access, type GatewayDecision, gatewayDecision, refusalMessage } from "../domain/access.ts";
import { TrafficSplit } from "../domain/canary.ts";
import { type DeploymentStatus, INACTIVE_STATUSES, SERVABLE_STATUSES } from "../domain/status.ts";
import type { TrafficSink } from "../metrics/traffic.ts";
import type { Replica } from "../runtime/replica.ts";
import type { ReplicaRouter } from "../runtime/runtime.ts";
import { PEER_MISS_HEADER, type PeerDirectory, PeerRoute } from "./peers.ts";
import type { RouteTable } from "./routes.ts";

const DEPLOYMENT_HEADER = "x-hangar-deployment-id";

/** A gateway answer that is an error, in the shape of API.md section 3. */
class GatewayError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** For environment paths: is the deployment still the environment's (from the cache), and which is it now (fresh)? */
interface Reroute {
  stillRouted(deploymentId: string): Promise<boolean>;
  fresh(): Promise<string>;
}

/** Where a request can go: a replica this process runs, or another member's replicas. */
type Route = Replica | PeerRoute;

/** Another member did not serve a request it was handed, before the request reached a replica: try again. */
class PeerFailed extends Error {
  constructor(
    readonly route: PeerRoute,
    readonly why: "unreachable" | "no replica",
  ) {
    super(`member ${route.memberName}: ${why}`);
  }
}

/** Connection errors that mean the request never reached the other member, so sending it again is safe. */
const NOT_SENT = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
]);
/** How many other members a request may be handed to before the gateway gives up on it. */
const PEER_ATTEMPTS = 4;

/** The environment now points at another deployment: route there instead. */
class Rerouted extends Error {
  constructor(readonly deploymentId: string) {
    super(`rerouted to ${deploymentId}`);
  }
}

type Target =
  | { kind: "deployment"; deploymentId: string }
  | { kind: "environment"; name: string }
  | { kind: "development" };

interface ParsedPath {
  modelId: string;
  target: Target;
  action: "predict" | "wake";
}

/** decodeURIComponent, or null for an escape that does not decode (which it throws on). */
function decodeSegment(segment: string): string | null {
  try {
    return decodeURIComponent(segment);
  } catch {
    return null;
  }
}

/**
 * Parses the gateway paths of API.md section 3; null for anything else, and
 * "malformed" for a path whose IDs or names hold a percent-escape that does not decode.
 */
export function parsePath(pathname: string): ParsedPath | "malformed" | null {
  const parts = pathname.split("/");
  // ["", "models", modelId, ...rest]
  if (parts[1] !== "models" || !parts[2]) return null;
  const modelId = decodeSegment(parts[2]);
  if (modelId === null) return "malformed";
  const rest = parts.slice(3);
  const action = rest[rest.length - 1];
  if (action !== "predict" && action !== "wake") return null;
  const middle = rest.slice(0, -1);
  if (middle.length === 0) return { modelId, action, target: { kind: "environment", name: "production" } };
  if (middle.length === 1 && middle[0] === "production") {
    return { modelId, action, target: { kind: "environment", name: "production" } };
  }
  if (middle.length === 1 && middle[0] === "development")
    return { modelId, action, target: { kind: "development" } };
  if (middle.length === 2 && middle[0] === "environments" && middle[1]) {
    const name = decodeSegment(middle[1]);
    return name === null ? "malformed" : { modelId, action, target: { kind: "environment", name } };
  }
  if (middle.length === 2 && middle[0] === "deployments" && middle[1]) {
    const deploymentId = decodeSegment(middle[1]);
    return deploymentId === null
      ? "malformed"
      : { modelId, action, target: { kind: "deployment", deploymentId } };
  }
  return null;
}

/** The gateway's answer for a key the permission matrix refuses. */
function refusal(
  decision: Exclude<GatewayDecision, "allow">,
  access: Access,
  parsed: ParsedPath,
): GatewayError {
  if (decision === "model_does_not_exist") {
    return new GatewayError(404, "model_does_not_exist", `model '${parsed.modelId}' does not exist`);
  }
  const path =
    parsed.target.kind === "environment"
      ? `environment '${parsed.target.name}'`
      : `${parsed.target.kind} paths`;
  return new GatewayError(403, "forbidden", refusalMessage(access, `call ${path} of this model`));
}

function sendJson(res: ServerResponse, status: number, body: unknown, deploymentId?: string): void {
  const payload = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  };
  if (deploymentId) headers[DEPLOYMENT_HEADER] = deploymentId;
  res.writeHead(status, headers);
  res.end(payload);
}

function sendError(res: ServerResponse, error: GatewayError, deploymentId?: string): void {
  sendJson(res, error.status, { error: error.message, error_code: error.code }, deploymentId);
}

/**
 * Where the gateway reports demand it cannot serve yet (the deployment
 * controller, which decides whether that wakes the deployment, as Knative's
 * activator pokes the autoscaler). Synchronous: the controller starts a
 * replica it scaled to zero before any database round trip.
 */
export interface DemandSink {
  /**
   * A request is waiting for the deployment, last seen in `seen` (when the gateway has looked).
   * Resolves once the controller has acted on it (a wake recorded): /wake answers after that.
   */
  waiting(deploymentId: string, seen?: DeploymentStatus): Promise<void>;
}

/**
 * The inference gateway: resolves a path to a deployment, holds the request
 * while the deployment starts, picks a ready replica and forwards the body.
 */
export class Gateway {
  private rotation = 0;
  /** Per environment: the canary split's state, so shares are exact over any run of requests. */
  private readonly splits = new Map<string, TrafficSplit>();

  constructor(
    private readonly config: Config,
    private readonly routes: RouteTable,
    private readonly runtime: ReplicaRouter,
    private readonly traffic: TrafficSink,
    private readonly demand: DemandSink,
    /** Other members' replicas (PostgreSQL); null on the embedded database, which has no other member. */
    private readonly peers: PeerDirectory | null = null,
  ) {}

  async handle(req: IncomingMessage, res: ServerResponse, pathname: string, access: Access): Promise<void> {
    const parsed = parsePath(pathname);
    if (parsed === "malformed") {
      return sendError(res, new GatewayError(400, "client_error", "malformed percent-escape in the path"));
    }
    if (!parsed) return sendError(res, new GatewayError(404, "not_found", `no inference path ${pathname}`));
    const decision = gatewayDecision(access, parsed.modelId, parsed.target);
    if (decision !== "allow") {
      req.resume();
      return sendError(res, refusal(decision, access, parsed));
    }
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return sendError(res, new GatewayError(405, "method_not_allowed", "inference paths take POST"));
    }
    let deploymentId: string | undefined;
    try {
      deploymentId = await this.resolve(parsed);
    } catch (error) {
      if (error instanceof GatewayError) return sendError(res, error);
      throw error;
    }
    if (parsed.action === "wake") {
      req.resume();
      try {
        await this.deploymentReady(deploymentId, false);
        return sendJson(res, 202, { status: "waking", deploymentId }, deploymentId);
      } catch (error) {
        if (error instanceof GatewayError) return sendError(res, error, deploymentId);
        throw error;
      }
    }
    const body = await this.bodyOrAnswer(req, res, deploymentId);
    if (!body) return;
    // An environment's deployment can change under a request (a promotion's
    // ACTIVATE): when the one it was routed to stops taking requests, look the
    // environment up again, once, rather than waking or failing the old one.
    const reroute: Reroute | null =
      parsed.target.kind === "environment"
        ? {
            stillRouted: async (id: string) => (await this.routedIds(parsed)).includes(id),
            fresh: async () => {
              this.routes.forgetModel(parsed.modelId);
              return this.resolve(parsed);
            },
          }
        : null;
    // A client that goes away (its connection closes before the answer is sent) cancels its request.
    const gone = new ClientGone();
    const onClose = () => {
      if (!res.writableFinished) gone.abort();
    };
    res.once("close", onClose);
    try {
      for (let attempt = 0, peerAttempts = 0; ; attempt++) {
        const target: string = deploymentId;
        // Counted from here, held time included: demand the autoscaler must see.
        this.traffic.started(target);
        try {
          const route = await this.pickRoute(target, reroute);
          if (gone.aborted) return;
          const status = await this.forward(route, body, res, target, gone);
          // No answer to count when the client left before it.
          if (status !== null) this.traffic.answered(target, status);
          return;
        } catch (error) {
          if (error instanceof Rerouted && attempt === 0) {
            deploymentId = error.deploymentId;
            continue;
          }
          if (error instanceof PeerFailed && ++peerAttempts < PEER_ATTEMPTS) {
            if (error.why === "unreachable") this.peers?.markDown(error.route.memberId);
            else this.peers?.forget(target);
            continue;
          }
          if (error instanceof PeerFailed) {
            const failure = new GatewayError(
              503,
              "model_unavailable",
              `deployment '${target}': ${error.message}`,
            );
            this.traffic.answered(target, failure.status);
            return sendError(res, failure, target);
          }
          if (error instanceof GatewayError) {
            this.traffic.answered(target, error.status);
            return sendError(res, error, target);
          }
          throw error;
        } finally {
          this.traffic.finished(target);
        }
      }
    } finally {
      res.off("close", onClose);
    }
  }

  /**
   * A request another member handed over (peers.ts): its key was checked there and its deployment
   * chosen; it is served by a replica of this process or not at all (a 503 that tells the other member
   * to look again), and is not counted here, where the member that received it counted it.
   */
  async handleForwarded(req: IncomingMessage, res: ServerResponse, deploymentId: string): Promise<void> {
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return sendError(res, new GatewayError(405, "method_not_allowed", "inference paths take POST"));
    }
    const body = await this.bodyOrAnswer(req, res, deploymentId);
    if (!body) return;
    const ready = this.runtime.ready(deploymentId);
    if (ready.length === 0) {
      res.setHeader(PEER_MISS_HEADER, "1");
      const miss = new GatewayError(503, "model_unavailable", "no ready replica here");
      return sendError(res, miss, deploymentId);
    }
    const gone = new ClientGone();
    const onClose = () => {
      if (!res.writableFinished) gone.abort();
    };
    res.once("close", onClose);
    try {
      await this.forward(this.leastInFlight(ready), body, res, deploymentId, gone);
    } catch (error) {
      if (error instanceof GatewayError) return sendError(res, error, deploymentId);
      throw error;
    } finally {
      res.off("close", onClose);
    }
  }

  /** Every deployment an environment path may route to now (its current one and a canary). */
  private async routedIds(parsed: ParsedPath): Promise<string[]> {
    if (parsed.target.kind !== "environment") return [];
    const environment = (await this.routes.model(parsed.modelId))?.environments.get(parsed.target.name);
    if (!environment?.currentDeploymentId) return [];
    return environment.canary
      ? [environment.currentDeploymentId, environment.canary.deploymentId]
      : [environment.currentDeploymentId];
  }

  /** The deployment a path names, or the gateway error explaining why there is none. */
  private async resolve(parsed: ParsedPath): Promise<string> {
    const model = await this.routes.model(parsed.modelId);
    if (!model || model.deleted) {
      throw new GatewayError(404, "model_does_not_exist", `model '${parsed.modelId}' does not exist`);
    }
    const { target } = parsed;
    let deploymentId: string;
    if (target.kind === "development") {
      if (!model.developmentDeploymentId) {
        throw new GatewayError(404, "no_deployment", "this model has no development deployment");
      }
      deploymentId = model.developmentDeploymentId;
    } else if (target.kind === "environment") {
      const environment = model.environments.get(target.name);
      if (!environment) {
        throw new GatewayError(
          404,
          "environment_does_not_exist",
          `environment '${target.name}' does not exist`,
        );
      }
      if (!environment.currentDeploymentId) {
        throw new GatewayError(404, "no_deployment", `environment '${target.name}' has no deployment`);
      }
      deploymentId = environment.currentDeploymentId;
      if (environment.canary) {
        let split = this.splits.get(environment.id);
        if (!split) {
          split = new TrafficSplit();
          this.splits.set(environment.id, split);
        }
        if (split.pickNew(environment.canary.percent)) deploymentId = environment.canary.deploymentId;
      }
    } else {
      deploymentId = target.deploymentId;
    }
    const deployment = await this.routes.deployment(deploymentId);
    if (!deployment || deployment.modelId !== model.id) {
      throw new GatewayError(404, "deployment_does_not_exist", `deployment '${deploymentId}' does not exist`);
    }
    if (deployment.deleted) {
      if (target.kind === "environment") {
        throw new GatewayError(404, "no_deployment", `environment '${target.name}' has no deployment`);
      }
      throw new GatewayError(404, "deployment_does_not_exist", `deployment '${deploymentId}' does not exist`);
    }
    if (INACTIVE_STATUSES.has(deployment.status)) {
      throw new GatewayError(404, "deployment_inactive", `deployment '${deploymentId}' is inactive`);
    }
    return deploymentId;
  }

  /** The request's body, or null once its error (too large, not JSON) has been answered. */
  private async bodyOrAnswer(
    req: IncomingMessage,
    res: ServerResponse,
    deploymentId: string,
  ): Promise<Buffer | null> {
    try {
      return await this.readBody(req);
    } catch (error) {
      if (!(error instanceof GatewayError)) throw error;
      sendError(res, error, deploymentId);
      return null;
    }
  }

  private readBody(req: IncomingMessage): Promise<Buffer> {
    const limit = this.config.maxRequestBytes;
    const declared = Number(req.headers["content-length"] ?? "0");
    if (declared > limit) {
      req.resume();
      return Promise.reject(
        new GatewayError(413, "payload_too_large", `request body exceeds ${limit} bytes`),
      );
    }
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > limit) {
          req.removeAllListeners("data");
          req.resume();
          reject(new GatewayError(413, "payload_too_large", `request body exceeds ${limit} bytes`));
          return;
        }
        chunks.push(chunk);
      });
      req.on("end", () => {
        const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        try {
          JSON.parse(body.toString("utf8"));
        } catch {
          reject(new GatewayError(400, "client_error", "request body is not valid JSON"));
          return;
        }
        resolve(body);
      });
      req.on("error", reject);
    });
  }

  /**
   * Waits until the deployment has a ready replica: a deployment still
   * starting holds the request (up to the ready timeout) instead of failing it.
   */
  private async deploymentReady(
    deploymentId: string,
    needReplica: boolean,
    reroute: Reroute | null = null,
  ): Promise<Route[]> {
    const deadline = Date.now() + this.config.readyTimeoutMs;
    // Report the demand before any database round trip: a deployment this process scaled to zero
    // starts at once (for an environment, only while the environment still routes to it: a demoted
    // deployment must stay asleep).
    if (!reroute || (await reroute.stillRouted(deploymentId))) void this.demand.waiting(deploymentId);
    for (;;) {
      const ready = this.runtime.ready(deploymentId);
      if (ready.length > 0) return ready;
      const elsewhere = needReplica && this.peers ? await this.peers.routes(deploymentId) : [];
      if (elsewhere.length > 0) return elsewhere;
      const deployment = await this.routes.deployment(deploymentId);
      if (
        reroute &&
        deployment &&
        (!SERVABLE_STATUSES.has(deployment.status) || deployment.status === "SCALED_TO_ZERO")
      ) {
        const current = await reroute.fresh();
        if (current !== deploymentId) throw new Rerouted(current);
      }
      if (!deployment || deployment.deleted) {
        throw new GatewayError(
          404,
          "deployment_does_not_exist",
          `deployment '${deploymentId}' does not exist`,
        );
      }
      const { status } = deployment;
      if (INACTIVE_STATUSES.has(status)) {
        throw new GatewayError(404, "deployment_inactive", `deployment '${deploymentId}' is inactive`);
      }
      if (status === "SCALED_TO_ZERO") await this.demand.waiting(deploymentId, status);
      if (!SERVABLE_STATUSES.has(status)) {
        throw new GatewayError(503, "model_unavailable", `deployment '${deploymentId}' is ${status}`);
      }
      if (!needReplica) return [];
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new GatewayError(
          503,
          "model_unavailable",
          `deployment '${deploymentId}' was not ready in time`,
        );
      }
      // Wake on a replica change; re-read the status now and then in case it failed.
      await this.runtime.nextChange(deploymentId, Math.min(left, 500));
      this.routes.refresh(deploymentId);
      this.peers?.forget(deploymentId);
    }
  }

  /** A replica of this process when one is ready (no extra hop), else another member's, else it waits. */
  private async pickRoute(deploymentId: string, reroute: Reroute | null): Promise<Route> {
    const ready = this.runtime.ready(deploymentId);
    if (ready.length > 0) return this.leastInFlight(ready);
    const elsewhere = this.peers ? await this.peers.routes(deploymentId) : [];
    return this.leastInFlight(
      elsewhere.length > 0 ? elsewhere : await this.deploymentReady(deploymentId, true, reroute),
    );
  }

  /** Least in flight per ready replica, starting from a rotating index so that ties spread evenly. */
  private leastInFlight<R extends Route>(routes: R[]): R {
    const n = routes.length;
    const start = this.rotation++ % n;
    let best = routes[start] as R;
    for (let i = 1; i < n; i++) {
      const candidate = routes[(start + i) % n] as R;
      if (load(candidate) < load(best)) best = candidate;
    }
    return best;
  }

  /**
   * Sends the request to the replica and streams its answer to the client, at most maxResponseBytes of
   * it. Answers the status the answer counts as for the traffic meter, or null when the client went away
   * first (`gone`): then the replica's request is cancelled. Errors before the answer's head is sent are
   * GatewayErrors; after it, the client's connection is reset.
   */
  private async forward(
    replica: Route,
    body: Buffer,
    res: ServerResponse,
    deploymentId: string,
    gone: ClientGone,
  ): Promise<number | null> {
    const limit = this.config.maxResponseBytes;
    replica.inFlight++;
    try {
      let response: Dispatcher.ResponseData;
      try {
        const headers: Record<string, string> = {
          "content-type": "application/json",
          "content-length": String(body.length),
        };
        if (replica instanceof PeerRoute) Object.assign(headers, replica.headers);
        response = await replica.pool.request({
          method: "POST",
          path: replica.predictPath,
          headers,
          body,
          headersTimeout: this.config.predictTimeoutMs,
          bodyTimeout: this.config.predictTimeoutMs,
          signal: gone,
        });
      } catch (error) {
        if (gone.aborted) return null;
        if (replica instanceof PeerRoute && NOT_SENT.has((error as { code?: string }).code ?? "")) {
          throw new PeerFailed(replica, "unreachable");
        }
        throw this.replicaFailure(error);
      }
      if (replica instanceof PeerRoute && response.headers[PEER_MISS_HEADER] !== undefined) {
        response.body.resume();
        throw new PeerFailed(replica, "no replica");
      }
      const declared = Number(response.headers["content-length"] ?? Number.NaN);
      if (declared > limit) {
        response.body.destroy();
        throw new GatewayError(502, "response_too_large", `the model's answer exceeds ${limit} bytes`);
      }
      if (response.statusCode >= 500) {
        // Error bodies are small: read (a bounded part of) it to tell Hangar's error shape from a server
        // command's own failure, whose message is passed on in that shape.
        let payload: Buffer;
        try {
          payload = await readAtMost(response.body, ERROR_BODY_BYTES);
        } catch (error) {
          if (gone.aborted) return null;
          throw this.replicaFailure(error);
        }
        if (!isGatewayErrorBody(payload)) {
          throw new GatewayError(
            500,
            "application_error",
            payload.toString("utf8").slice(0, 2000) || "model error",
          );
        }
        res.writeHead(response.statusCode, {
          "content-type": String(response.headers["content-type"] ?? "application/json"),
          "content-length": payload.length,
          [DEPLOYMENT_HEADER]: deploymentId,
        });
        res.end(payload);
        return response.statusCode;
      }
      const headers: Record<string, string | number> = {
        "content-type": String(response.headers["content-type"] ?? "application/json"),
        [DEPLOYMENT_HEADER]: deploymentId,
      };
      if (Number.isSafeInteger(declared)) headers["content-length"] = declared;
      res.writeHead(response.statusCode, headers);
      return await this.relay(response.body, res, limit, gone, response.statusCode);
    } finally {
      replica.inFlight--;
    }
  }

  /** Copies the answer's body to the client as it comes, with backpressure; see forward() for the result. */
  private async relay(
    source: Dispatcher.ResponseData["body"],
    res: ServerResponse,
    limit: number,
    gone: ClientGone,
    status: number,
  ): Promise<number | null> {
    let size = 0;
    try {
      for await (const chunk of source as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
          // Leaving the loop destroys the body, which closes the replica's connection too.
          res.destroy();
          return 502;
        }
        if (!res.write(chunk)) await drained(res);
        if (gone.aborted) return null;
      }
    } catch (error) {
      // The replica failed or timed out mid-answer (or the client left): the head is out, so reset.
      res.destroy();
      if (gone.aborted) return null;
      return this.replicaFailure(error).status;
    }
    res.end();
    return status;
  }

  private replicaFailure(error: unknown): GatewayError {
    if (error instanceof GatewayError) return error;
    const code = (error as { code?: string }).code;
    if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
      return new GatewayError(
        504,
        "timeout",
        `the model did not answer within ${this.config.predictTimeoutMs} ms`,
      );
    }
    return new GatewayError(503, "model_unavailable", `the replica failed: ${(error as Error).message}`);
  }
}

/** A route's load: requests in flight per ready replica behind it. */
function load(route: Route): number {
  return route instanceof PeerRoute ? route.inFlight / Math.max(1, route.ready) : route.inFlight;
}

/** Enough of a server command's error body to pass its message on. */
const ERROR_BODY_BYTES = 64 * 1024;

/** The first `max` bytes of a body; the rest is not read (the body is destroyed). */
async function readAtMost(source: AsyncIterable<Buffer>, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of source) {
    chunks.push(chunk.subarray(0, max - size));
    size += Math.min(chunk.length, max - size);
    if (size >= max) break;
  }
  return Buffer.concat(chunks);
}

/**
 * That the client went away, as undici's request takes it (any emitter of "abort" with `aborted`): an
 * AbortController per request costs a fifth of the gateway's own work at saturation.
 */
class ClientGone extends EventEmitter {
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit("abort");
  }
}

/** Resolves once the response can take more, or is gone. */
function drained(res: ServerResponse): Promise<void> {
  if (res.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done);
      res.off("close", done);
      resolve();
    };
    res.once("drain", done);
    res.once("close", done);
  });
}

function isGatewayErrorBody(payload: Buffer): boolean {
  try {
    const parsed = JSON.parse(payload.toString("utf8")) as { error_code?: unknown };
    return typeof parsed.error_code === "string";
  } catch {
    return false;
  }
}
