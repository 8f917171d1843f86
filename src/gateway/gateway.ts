import type { IncomingMessage, ServerResponse } from "node:http";
import { type Dispatcher, errors as undiciErrors } from "undici";
import type { Config } from "../config.ts";
import { type Access, type GatewayDecision, gatewayDecision, refusalMessage } from "../domain/access.ts";
import { TrafficSplit } from "../domain/canary.ts";
import { type DeploymentStatus, INACTIVE_STATUSES, SERVABLE_STATUSES } from "../domain/status.ts";
import { answerHead } from "../http/origin.ts";
import { REQUEST_ID_HEADER, requestIdOf } from "../http/request-id.ts";
import type { GatewayAnswers } from "../metrics/prometheus.ts";
import type { TrafficSink } from "../metrics/traffic.ts";
import type { Replica } from "../runtime/replica.ts";
import type { ReplicaRouter } from "../runtime/runtime.ts";
import { MEMBER_SECRET_HEADER, PEER_MISS_HEADER, type PeerDirectory, PeerRoute } from "./peers.ts";
import type { DeploymentRoute, ModelRoute, RouteTable } from "./routes.ts";

/** Written as a literal key where an answer is built per request (see Exchange.onHeaders). */
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
  res.writeHead(status, answerHead(res, headers));
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
   * Resolves once the controller has acted on it (a wake recorded): /wake answers after that. True
   * when this request's report is what woke the deployment from zero (its answer ends a cold start).
   */
  waiting(deploymentId: string, seen?: DeploymentStatus): Promise<boolean>;
}

/**
 * The inference gateway: resolves a path to a deployment, holds the request
 * while the deployment starts, picks a ready replica and forwards the body.
 */
export class Gateway {
  private rotation = 0;
  /** Per environment: the canary split's state, so shares are exact over any run of requests. */
  private readonly splits = new Map<string, TrafficSplit>();
  private readonly paths = new Map<string, ParsedPath | "malformed" | null>();

  constructor(
    private readonly config: Config,
    private readonly routes: RouteTable,
    private readonly runtime: ReplicaRouter,
    private readonly traffic: TrafficSink,
    private readonly demand: DemandSink,
    /** Other members' replicas (PostgreSQL); null on the embedded database, which has no other member. */
    private readonly peers: PeerDirectory | null = null,
    /** The Prometheus counts of answers (GET /metrics), or null. */
    private readonly answers: GatewayAnswers | null = null,
  ) {}

  /** Counts an answer to a request for `deploymentId` through `parsed`: the traffic meter, and /metrics. */
  private answered(parsed: ParsedPath, deploymentId: string, status: number, since: number): void {
    const ms = this.traffic.answered(deploymentId, status, since, this.environmentIdOf(parsed));
    if (this.answers) {
      const environment = parsed.target.kind === "environment" ? parsed.target.name : "";
      this.answers.answered(parsed.modelId, deploymentId, environment, status, ms);
    }
  }

  /** The ID of the environment whose path `parsed` is ("" for none), as the routes cached it. */
  private environmentIdOf(parsed: ParsedPath): string {
    if (parsed.target.kind !== "environment") return "";
    return this.routes.modelNow(parsed.modelId)?.environments.get(parsed.target.name)?.id ?? "";
  }

  /**
   * The request's answer went after it waited for `deploymentId` to start: when its report is what
   * woke it (one of `wakes`), that was a cold start (API.md section 11), from `since` to now.
   */
  private coldStartAnswered(
    parsed: ParsedPath,
    deploymentId: string,
    route: Route,
    wakes: readonly Promise<boolean>[],
    since: number,
  ): void {
    const answeredAt = Date.now();
    const local = route instanceof PeerRoute ? null : route;
    const environmentId = this.environmentIdOf(parsed);
    void Promise.all(wakes).then((woke) => {
      if (!woke.includes(true)) return;
      this.traffic.coldStarted({
        modelId: parsed.modelId,
        deploymentId,
        environmentId,
        replicaId: local?.id ?? null,
        requestedAt: since,
        processStartedAt: local?.spawnedAt ?? null,
        modelLoadedAt: local?.readyAt ?? null,
        answeredAt,
      });
      this.answers?.coldStarted(parsed.modelId, deploymentId, (answeredAt - since) / 1000);
    });
  }

  /**
   * Serves one gateway request. With the path's routes cached (every request but the first few of a
   * deployment) it reaches the body read without waiting on anything; the rest goes through resolve().
   */
  handle(req: IncomingMessage, res: ServerResponse, pathname: string, access: Access): Promise<void> | void {
    const parsed = this.parse(pathname);
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
    if (parsed.action === "predict") {
      const known = this.resolveNow(parsed);
      if (known instanceof GatewayError) return sendError(res, known);
      if (known !== undefined) return this.predict(req, res, parsed, known);
    }
    return this.resolveAndServe(req, res, parsed);
  }

  /** handle() for a path whose routes are not all cached, and for /wake. */
  private async resolveAndServe(
    req: IncomingMessage,
    res: ServerResponse,
    parsed: ParsedPath,
  ): Promise<void> {
    let deploymentId: string;
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
    return this.predict(req, res, parsed, deploymentId);
  }

  /**
   * Reads the body of a predict for `deploymentId` and serves it (an error of its body is answered).
   * With a route known at once (the common case: a replica of this process ready, else another
   * member's from the directory's cache) it is forwarded from the body's last chunk on, by callbacks;
   * anything else (a wait, a member that did not take it) goes through serve().
   */
  private predict(
    req: IncomingMessage,
    res: ServerResponse,
    parsed: ParsedPath,
    deploymentId: string,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      readBody(req, this.config.maxRequestBytes, reject, (body) => {
        try {
          this.predictBody(res, parsed, deploymentId, body, resolve, reject);
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /** predict() once the body is read: `resolve` once the request is answered, `reject` when that fails. */
  private predictBody(
    res: ServerResponse,
    parsed: ParsedPath,
    deploymentId: string,
    body: Buffer | GatewayError,
    resolve: () => void,
    reject: (error: unknown) => void,
  ): void {
    if (body instanceof GatewayError) {
      sendError(res, body, deploymentId);
      resolve();
      return;
    }
    // A client that goes away (its connection closes before the answer is sent) cancels its request.
    const call = new ClientCall(res);
    const route = this.routeNow(deploymentId);
    if (!route) {
      this.serve(res, parsed, deploymentId, body, call).then(resolve, reject);
      return;
    }
    // Counted from here: demand the autoscaler must see, and the answer's latency.
    const since = this.traffic.started(deploymentId);
    this.forward(route, body, res, deploymentId, call, (outcome) => {
      try {
        if (outcome instanceof PeerFailed) {
          // Another member did not take it: as serve() goes on after its first attempt.
          this.traffic.finished(deploymentId);
          this.peerFailed(outcome, deploymentId);
          this.serve(res, parsed, deploymentId, body, call, 1, 1, since).then(resolve, reject);
          return;
        }
        // An attempt that neither waited nor was rerouted fails with nothing else but a GatewayError.
        this.concluded(res, parsed, deploymentId, outcome as number | null | GatewayError, since);
        resolve();
      } catch (error) {
        reject(error);
      }
    });
  }

  /** A route to forward to without waiting: a ready replica of this process, else one of another member's. */
  private routeNow(deploymentId: string): Route | undefined {
    const ready = this.runtime.ready(deploymentId);
    if (ready.length > 0) return this.leastInFlight(ready);
    const elsewhere = this.peers?.routesNow(deploymentId);
    return elsewhere && elsewhere.length > 0 ? this.leastInFlight(elsewhere) : undefined;
  }

  /** Another member did not take a request: out of rotation if unreachable, else its routes looked up again. */
  private peerFailed(failure: PeerFailed, deploymentId: string): void {
    if (failure.why === "unreachable") this.peers?.markDown(failure.route.memberId);
    else this.peers?.forget(deploymentId);
  }

  /**
   * serve() for a request that no replica of this process is ready for: another member's, else it
   * waits for one (held while the deployment starts, rerouted once when an environment's deployment
   * changed under it, handed to another member again when one did not take it).
   */
  private async serve(
    res: ServerResponse,
    parsed: ParsedPath,
    deploymentId: string,
    body: Buffer,
    call: ClientCall,
    /** Attempts made already, and how many of them other members did not take (predict()'s). */
    attempts = 0,
    peerAttempts = 0,
    /** When the request's first attempt was counted as started (its answer's latency runs from there). */
    since?: number,
  ): Promise<void> {
    for (let attempt = attempts; ; attempt++) {
      const target: string = deploymentId;
      // Counted from here, held time included: demand the autoscaler must see.
      const started = this.traffic.started(target);
      since ??= started;
      try {
        const ready = this.runtime.ready(target);
        // The wakes this request's waiting reported: did it cause one (a cold start)?
        const wakes: Promise<boolean>[] = [];
        const route =
          ready.length > 0 ? this.leastInFlight(ready) : await this.routeElsewhere(target, parsed, wakes);
        if (call.gone) return;
        const outcome = await new Promise<number | null | Error>((done) =>
          this.forward(route, body, res, target, call, done),
        );
        if (outcome instanceof Error) throw outcome;
        // No answer to count when the client left before it.
        if (outcome !== null) {
          this.answered(parsed, target, outcome, since);
          if (wakes.length > 0) this.coldStartAnswered(parsed, target, route, wakes, since);
        }
        return;
      } catch (error) {
        if (error instanceof Rerouted && attempt === 0) {
          deploymentId = error.deploymentId;
          continue;
        }
        if (error instanceof PeerFailed && ++peerAttempts < PEER_ATTEMPTS) {
          this.peerFailed(error, target);
          continue;
        }
        if (error instanceof PeerFailed) {
          const failure = new GatewayError(
            503,
            "model_unavailable",
            `deployment '${target}': ${error.message}`,
          );
          this.answered(parsed, target, failure.status, since);
          return sendError(res, failure, target);
        }
        if (error instanceof GatewayError) {
          this.answered(parsed, target, error.status, since);
          return sendError(res, error, target);
        }
        throw error;
      } finally {
        this.traffic.finished(target);
      }
    }
  }

  /**
   * The end of predict()'s attempt with a replica of this process, as serve() ends one: its answer
   * counted (none when the client left before it), a gateway error answered, and the request no
   * longer in flight.
   */
  private concluded(
    res: ServerResponse,
    parsed: ParsedPath,
    deploymentId: string,
    outcome: number | null | GatewayError,
    since: number,
  ): void {
    try {
      if (outcome instanceof GatewayError) {
        this.answered(parsed, deploymentId, outcome.status, since);
        sendError(res, outcome, deploymentId);
      } else if (outcome !== null) {
        this.answered(parsed, deploymentId, outcome, since);
      }
    } finally {
      this.traffic.finished(deploymentId);
    }
  }

  /**
   * A request another member handed over (peers.ts): its key was checked there and its deployment
   * chosen; it is served by a replica of this process or not at all (a 503 that tells the other member
   * to look again), and is not counted here, where the member that received it counted it.
   */
  handleForwarded(req: IncomingMessage, res: ServerResponse, deploymentId: string): Promise<void> | void {
    if (req.method !== "POST") {
      res.setHeader("allow", "POST");
      return sendError(res, new GatewayError(405, "method_not_allowed", "inference paths take POST"));
    }
    return new Promise<void>((resolve, reject) => {
      readBody(req, this.config.maxRequestBytes, reject, (body) => {
        try {
          if (body instanceof GatewayError) {
            sendError(res, body, deploymentId);
            return resolve();
          }
          const ready = this.runtime.ready(deploymentId);
          if (ready.length === 0) {
            res.setHeader(PEER_MISS_HEADER, "1");
            sendError(res, new GatewayError(503, "model_unavailable", "no ready replica here"), deploymentId);
            return resolve();
          }
          this.forward(this.leastInFlight(ready), body, res, deploymentId, new ClientCall(res), (outcome) => {
            try {
              if (outcome instanceof GatewayError) sendError(res, outcome, deploymentId);
              else if (outcome instanceof Error) throw outcome;
              resolve();
            } catch (error) {
              reject(error);
            }
          });
        } catch (error) {
          reject(error);
        }
      });
    });
  }

  /** parsePath, remembered per path: a client calls the same few paths over and over. */
  private parse(pathname: string): ParsedPath | "malformed" | null {
    let parsed = this.paths.get(pathname);
    if (parsed === undefined) {
      parsed = parsePath(pathname);
      if (this.paths.size >= MAX_PATHS) this.paths.clear();
      this.paths.set(pathname, parsed);
    }
    return parsed;
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
    const chosen = this.choose(parsed, model);
    if (chosen instanceof GatewayError) throw chosen;
    const checked = checkDeployment(parsed, chosen, model, await this.routes.deployment(chosen));
    if (checked instanceof GatewayError) throw checked;
    return checked;
  }

  /**
   * resolve() from the route table's cache alone: the deployment, the gateway error, or undefined when
   * something it needs is not cached (then resolve() reads it; nothing was decided here, so a canary's
   * split is not advanced twice).
   */
  private resolveNow(parsed: ParsedPath): string | GatewayError | undefined {
    const model = this.routes.modelNow(parsed.modelId);
    if (model === undefined) return undefined;
    if (model.deleted) {
      return new GatewayError(404, "model_does_not_exist", `model '${parsed.modelId}' does not exist`);
    }
    if (parsed.target.kind === "environment") {
      const canary = model.environments.get(parsed.target.name)?.canary;
      if (canary && this.routes.deploymentNow(canary.deploymentId) === undefined) return undefined;
    }
    const chosen = this.choose(parsed, model, (id) => this.routes.deploymentNow(id) !== undefined);
    if (chosen === undefined || chosen instanceof GatewayError) return chosen;
    const deployment = this.routes.deploymentNow(chosen);
    return deployment === undefined ? undefined : checkDeployment(parsed, chosen, model, deployment);
  }

  /**
   * The deployment the path picks in the model (a canary's split decides for an environment during a
   * ramp), or why there is none. With `cached`, undefined when a deployment it could pick is not
   * cached, before the split is advanced.
   */
  private choose(parsed: ParsedPath, model: ModelRoute): string | GatewayError;
  private choose(
    parsed: ParsedPath,
    model: ModelRoute,
    cached: (deploymentId: string) => boolean,
  ): string | GatewayError | undefined;
  private choose(
    parsed: ParsedPath,
    model: ModelRoute,
    cached?: (deploymentId: string) => boolean,
  ): string | GatewayError | undefined {
    const { target } = parsed;
    if (target.kind === "deployment") return target.deploymentId;
    if (target.kind === "development") {
      return (
        model.developmentDeploymentId ??
        new GatewayError(404, "no_deployment", "this model has no development deployment")
      );
    }
    const environment = model.environments.get(target.name);
    if (!environment) {
      return new GatewayError(
        404,
        "environment_does_not_exist",
        `environment '${target.name}' does not exist`,
      );
    }
    if (!environment.currentDeploymentId) {
      return new GatewayError(404, "no_deployment", `environment '${target.name}' has no deployment`);
    }
    if (!environment.canary) return environment.currentDeploymentId;
    if (cached && (!cached(environment.currentDeploymentId) || !cached(environment.canary.deploymentId))) {
      return undefined;
    }
    let split = this.splits.get(environment.id);
    if (!split) {
      split = new TrafficSplit();
      this.splits.set(environment.id, split);
    }
    return split.pickNew(environment.canary.percent)
      ? environment.canary.deploymentId
      : environment.currentDeploymentId;
  }

  /**
   * Waits until the deployment has a ready replica: a deployment still
   * starting holds the request (up to the ready timeout) instead of failing it.
   */
  private async deploymentReady(
    deploymentId: string,
    needReplica: boolean,
    reroute: Reroute | null = null,
    /** Where the demand reports go (whether each woke the deployment). */
    wakes: Promise<boolean>[] = [],
  ): Promise<Route[]> {
    const deadline = Date.now() + this.config.readyTimeoutMs;
    // Report the demand before any database round trip: a deployment this process scaled to zero
    // starts at once (for an environment, only while the environment still routes to it: a demoted
    // deployment must stay asleep).
    if (!reroute || (await reroute.stillRouted(deploymentId))) wakes.push(this.demand.waiting(deploymentId));
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
      if (status === "SCALED_TO_ZERO") {
        const woke = this.demand.waiting(deploymentId, status);
        wakes.push(woke);
        await woke;
      }
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
      // A replica may have become ready during the reads above: nextChange would wait for the one after.
      if (this.runtime.ready(deploymentId).length > 0) continue;
      // Wake on a replica change; re-read the status now and then in case it failed.
      await this.runtime.nextChange(deploymentId, Math.min(left, 500));
      this.routes.refresh(deploymentId);
      this.peers?.forget(deploymentId);
    }
  }

  /** With no replica of this process ready: another member's, else it waits (deploymentReady). */
  private async routeElsewhere(
    deploymentId: string,
    parsed: ParsedPath,
    wakes: Promise<boolean>[],
  ): Promise<Route> {
    const elsewhere = this.peers ? await this.peers.routes(deploymentId) : [];
    if (elsewhere.length > 0) return this.leastInFlight(elsewhere);
    return this.leastInFlight(await this.deploymentReady(deploymentId, true, this.reroute(parsed), wakes));
  }

  /**
   * An environment's deployment can change under a request (a promotion's ACTIVATE): when the one it
   * was routed to stops taking requests, look the environment up again, once, rather than waking or
   * failing the old one.
   */
  private reroute(parsed: ParsedPath): Reroute | null {
    if (parsed.target.kind !== "environment") return null;
    return {
      stillRouted: async (id: string) => (await this.routedIds(parsed)).includes(id),
      fresh: async () => {
        this.routes.forgetModel(parsed.modelId);
        return this.resolve(parsed);
      },
    };
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
   * it (an Exchange on undici's dispatch API: no response stream, no promise). Calls `done` once: with
   * the status the answer counts as for the traffic meter, null when the client went away first (then
   * the replica's request is cancelled), or, when nothing was sent to the client, a GatewayError
   * (PeerFailed for another member that did not take it). Failures after the head reset the client's
   * connection.
   */
  private forward(
    route: Route,
    body: Buffer,
    res: ServerResponse,
    deploymentId: string,
    call: ClientCall,
    done: (outcome: number | null | Error) => void,
  ): void {
    const exchange = new Exchange(route, res, deploymentId, call, this.config, done);
    const timeout = this.config.predictTimeoutMs;
    // The replica (or the member it is handed to) gets the request's id; another member, the secret.
    const headers = [
      "content-type",
      "application/json",
      "content-length",
      String(body.length),
      REQUEST_ID_HEADER,
      requestIdOf(res) ?? "",
    ];
    if (route instanceof PeerRoute) headers.push(MEMBER_SECRET_HEADER, route.secret);
    route.pool.dispatch(
      {
        method: "POST",
        path: route.predictPath,
        headers,
        body,
        headersTimeout: timeout,
        bodyTimeout: timeout,
      },
      exchange,
    );
  }
}

/** A route's load: requests in flight per ready replica behind it. */
function load(route: Route): number {
  return route instanceof PeerRoute ? route.inFlight / Math.max(1, route.ready) : route.inFlight;
}

/** Enough of a server command's error body to pass its message on. */
const ERROR_BODY_BYTES = 64 * 1024;
/** Parsed paths remembered at most (gateway.parse); a flood of made-up paths only empties the memo. */
const MAX_PATHS = 1_000;

/**
 * Reads the request's body within `limit` bytes and checks that it is JSON: `done` gets the body or
 * the error to answer (413, 400); `failed`, the request's own failure (the client went away mid-body).
 */
function readBody(
  req: IncomingMessage,
  limit: number,
  failed: (error: Error) => void,
  done: (body: Buffer | GatewayError) => void,
): void {
  const length = req.headers["content-length"];
  if (length !== undefined && Number(length) > limit) {
    req.resume();
    done(new GatewayError(413, "payload_too_large", `request body exceeds ${limit} bytes`));
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  req.on("data", (chunk: Buffer) => {
    size += chunk.length;
    if (size > limit) {
      req.removeAllListeners("data");
      req.resume();
      done(new GatewayError(413, "payload_too_large", `request body exceeds ${limit} bytes`));
      return;
    }
    chunks.push(chunk);
  });
  req.on("end", () => {
    // Past the limit, done was called already (the rest of the body was only drained).
    if (size > limit) return;
    const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
    let json = true;
    try {
      JSON.parse(body.toString("utf8"));
    } catch {
      json = false;
    }
    done(json ? body : new GatewayError(400, "client_error", "request body is not valid JSON"));
  });
  req.on("error", failed);
}

/** The chosen deployment if the path may be served by it, else why not. */
function checkDeployment(
  parsed: ParsedPath,
  deploymentId: string,
  model: ModelRoute,
  deployment: DeploymentRoute | null,
): string | GatewayError {
  if (!deployment || deployment.modelId !== model.id) {
    return new GatewayError(404, "deployment_does_not_exist", `deployment '${deploymentId}' does not exist`);
  }
  if (deployment.deleted) {
    if (parsed.target.kind === "environment") {
      return new GatewayError(404, "no_deployment", `environment '${parsed.target.name}' has no deployment`);
    }
    return new GatewayError(404, "deployment_does_not_exist", `deployment '${deploymentId}' does not exist`);
  }
  if (INACTIVE_STATUSES.has(deployment.status)) {
    return new GatewayError(404, "deployment_inactive", `deployment '${deploymentId}' is inactive`);
  }
  return deploymentId;
}

/** The gateway's error for a replica that failed or timed out. */
function replicaFailure(error: unknown, predictTimeoutMs: number): GatewayError {
  if (error instanceof GatewayError) return error;
  const code = (error as { code?: string }).code;
  if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
    return new GatewayError(504, "timeout", `the model did not answer within ${predictTimeoutMs} ms`);
  }
  return new GatewayError(503, "model_unavailable", `the replica failed: ${(error as Error).message}`);
}

/**
 * One request's client, while the gateway serves it: whether it went away (its connection closed
 * before the answer was sent), and the exchange with a replica to cancel when it does.
 */
class ClientCall {
  gone = false;
  exchange: Exchange | null = null;
  private readonly onClose = () => {
    if (this.res.writableFinished) return;
    this.gone = true;
    this.exchange?.cancel();
  };

  constructor(private readonly res: ServerResponse) {
    // A response emits 'close' once, finished or not (then this does nothing): no need to remove it.
    res.on("close", this.onClose);
  }
}

/** Where an exchange is: waiting for the answer's head, relaying its body, reading a 5xx's, or done. */
type Phase = "head" | "relay" | "errorBody" | "done";

/** What an Exchange reads from an answer's head. */
interface AnswerHead {
  contentType: string | undefined;
  contentLength: string | undefined;
  peerMiss: boolean;
}

function headerText(value: Buffer | string | string[]): string {
  return typeof value === "string"
    ? value
    : Array.isArray(value)
      ? value.join(",")
      : value.toString("latin1");
}

/**
 * The answer head's content-type and content-length, from undici's raw (latin1) name/value list, a
 * repeated header's values joined with "," (as undici's parsed headers read through String() were),
 * and whether it holds PEER_MISS_HEADER.
 */
function readHead(raw: (Buffer | string | string[])[] | null): AnswerHead {
  const head: AnswerHead = { contentType: undefined, contentLength: undefined, peerMiss: false };
  if (!raw) return head;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i] as Buffer | string;
    // Only names of the right length are decoded and compared.
    const length = name.length;
    if (length !== 12 && length !== 14 && length !== PEER_MISS_HEADER.length) continue;
    const key = headerText(name).toLowerCase();
    const value = headerText(raw[i + 1] as Buffer | string | string[]);
    if (key === "content-type") {
      head.contentType = head.contentType === undefined ? value : `${head.contentType},${value}`;
    } else if (key === "content-length") {
      head.contentLength = head.contentLength === undefined ? value : `${head.contentLength},${value}`;
    } else if (key === PEER_MISS_HEADER) {
      head.peerMiss = true;
    }
  }
  return head;
}

/**
 * One request to a replica (or to another member) and its answer's way to the client: an undici
 * dispatch handler. `done` is called once: with the status the answer counts as, null when the client
 * went away, or a GatewayError / PeerFailed while nothing was sent to the client.
 */
class Exchange implements Dispatcher.DispatchHandler {
  private phase: Phase = "head";
  private abortRequest: ((reason?: Error) => void) | null = null;
  private resumeReading: (() => void) | null = null;
  private status = 0;
  private size = 0;
  private contentType = "application/json";
  private errorChunks: Buffer[] | null = null;
  /** The answer's declared length (-1: none), and its last chunk, held for end() once it is all here. */
  private declared = -1;
  private last: Buffer | null = null;

  constructor(
    private readonly route: Route,
    private readonly res: ServerResponse,
    private readonly deploymentId: string,
    private readonly call: ClientCall,
    private readonly config: Pick<Config, "maxResponseBytes" | "predictTimeoutMs">,
    private readonly done: (outcome: number | null | Error) => void,
  ) {
    route.inFlight++;
    call.exchange = this;
  }

  /** The client went away: the replica's request is cancelled (onError follows). */
  cancel(): void {
    this.abortRequest?.(new undiciErrors.RequestAbortedError());
  }

  onConnect(abort: (reason?: Error) => void): void {
    if (this.call.gone) abort(new undiciErrors.RequestAbortedError());
    else this.abortRequest = abort;
  }

  onHeaders(
    statusCode: number,
    rawHeaders: Buffer[] | string[] | null,
    resume: () => void,
    _statusText?: string,
  ): boolean {
    // Informational answers (100 Continue) are not the answer.
    if (statusCode < 200 || this.phase !== "head") return true;
    const head = readHead(rawHeaders);
    if (this.route instanceof PeerRoute && head.peerMiss) {
      // The rest of its (small) body is read and dropped, so that the connection is kept.
      this.finish(new PeerFailed(this.route, "no replica"));
      return true;
    }
    const limit = this.config.maxResponseBytes;
    const declared = Number(head.contentLength ?? Number.NaN);
    if (declared > limit) {
      this.finish(new GatewayError(502, "response_too_large", `the model's answer exceeds ${limit} bytes`));
      // Not read: the replica's connection closes.
      this.abortRequest?.(new undiciErrors.RequestAbortedError());
      return false;
    }
    this.status = statusCode;
    if (head.contentType !== undefined) this.contentType = head.contentType;
    if (statusCode >= 500) {
      // Error bodies are small: read (a bounded part of) it to tell Hangar's error shape from a server
      // command's own failure, whose message is passed on in that shape.
      this.phase = "errorBody";
      this.errorChunks = [];
      return true;
    }
    // One literal per shape (no key added later, no computed key: both leave V8's fast paths).
    const res = this.res;
    res.writeHead(
      statusCode,
      answerHead(
        res,
        Number.isSafeInteger(declared)
          ? {
              "content-type": this.contentType,
              "x-hangar-deployment-id": this.deploymentId,
              "x-request-id": requestIdOf(res) ?? "",
              "content-length": declared,
            }
          : {
              "content-type": this.contentType,
              "x-hangar-deployment-id": this.deploymentId,
              "x-request-id": requestIdOf(res) ?? "",
            },
      ),
    );
    this.phase = "relay";
    if (Number.isSafeInteger(declared)) this.declared = declared;
    this.resumeReading = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.phase === "relay") {
      this.size += chunk.length;
      if (this.size > this.config.maxResponseBytes) {
        this.res.destroy();
        this.finish(502);
        this.abortRequest?.(new undiciErrors.RequestAbortedError());
        return false;
      }
      if (this.size === this.declared) {
        // The whole declared answer is in: the parser completes it at once, and end() sends it in one go.
        this.last = chunk;
        return true;
      }
      if (this.res.write(chunk)) return true;
      // Backpressure: read on once the client has taken it (or is gone: then cancel() ends it).
      this.res.once("drain", () => this.resumeReading?.());
      return false;
    }
    if (this.phase === "errorBody") {
      const chunks = this.errorChunks as Buffer[];
      chunks.push(chunk.subarray(0, ERROR_BODY_BYTES - this.size));
      this.size += Math.min(chunk.length, ERROR_BODY_BYTES - this.size);
      if (this.size >= ERROR_BODY_BYTES) {
        // The rest is not read (the replica's connection closes).
        this.answerError();
        this.abortRequest?.(new undiciErrors.RequestAbortedError());
        return false;
      }
    }
    return true;
  }

  onComplete(_trailers: unknown): void {
    if (this.phase === "relay") {
      const last = this.last;
      this.last = null;
      if (last) this.res.end(last);
      else this.res.end();
      this.finish(this.status);
    } else if (this.phase === "errorBody") {
      this.answerError();
    }
  }

  onError(error: Error): void {
    const phase = this.phase;
    if (phase === "done") return;
    if (phase === "relay") {
      // The replica failed or timed out mid-answer (or the client left): the head is out, so reset.
      this.res.destroy();
      this.finish(this.call.gone ? null : replicaFailure(error, this.config.predictTimeoutMs).status);
    } else if (this.call.gone) {
      this.finish(null);
    } else if (
      phase === "head" &&
      this.route instanceof PeerRoute &&
      NOT_SENT.has((error as { code?: string }).code ?? "")
    ) {
      this.finish(new PeerFailed(this.route, "unreachable"));
    } else {
      this.finish(replicaFailure(error, this.config.predictTimeoutMs));
    }
  }

  /** Passes a 5xx on: Hangar-shaped as it is, anything else as application_error with its text. */
  private answerError(): void {
    const payload = Buffer.concat(this.errorChunks as Buffer[]);
    if (!isGatewayErrorBody(payload)) {
      const message = payload.toString("utf8").slice(0, 2000) || "model error";
      this.finish(new GatewayError(500, "application_error", message));
      return;
    }
    this.res.writeHead(
      this.status,
      answerHead(this.res, {
        "content-type": this.contentType,
        "content-length": payload.length,
        [DEPLOYMENT_HEADER]: this.deploymentId,
      }),
    );
    this.res.end(payload);
    this.finish(this.status);
  }

  private finish(outcome: number | null | Error): void {
    if (this.phase === "done") return;
    this.phase = "done";
    this.route.inFlight--;
    if (this.call.exchange === this) this.call.exchange = null;
    this.done(outcome);
  }
}

function isGatewayErrorBody(payload: Buffer): boolean {
  try {
    const parsed = JSON.parse(payload.toString("utf8")) as { error_code?: unknown };
    return typeof parsed.error_code === "string";
  } catch {
    return false;
  }
}
