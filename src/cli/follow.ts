/**
 * Following a deployment (deploymentStatus) or a promotion (promotionProgress) until a condition, with
 * an optional deadline and an optional way to stop watching early (Ctrl-C). The subscriptions send the
 * current state first, so nothing that happened before the subscription started is missed.
 */
import type { HangarApi } from "./api.ts";
import { CliError } from "./errors.ts";
import {
  type DeploymentSnapshot,
  FAILED_STATUSES,
  type PromotionSnapshot,
  READY_STATUSES,
  TERMINAL_PROMOTION_STATUSES,
} from "./progress.ts";

export const DEPLOYMENT_FIELDS = `
  id name kind status activeReplicaCount predictUrl createdAt
  model { id name }`;

export const PROMOTION_FIELDS = `
  id status percentTrafficToNewVersion canaryStage canaryStages errorMessage createdAt finishedAt
  steps { name status startedAt finishedAt message }
  environment { id name predictUrl model { id name } }
  sourceDeployment { id name }
  deployment { id name }
  previousDeployment { id name }`;

export interface FollowOptions<T> {
  /** Epoch milliseconds after which following fails with a CliError; null for no deadline. */
  deadline?: number | null;
  /** Called with every snapshot, in order. */
  onUpdate?: (snapshot: T) => void | Promise<void>;
  /** Aborting it stops watching: follow resolves with `stopped: true` and the last snapshot. */
  signal?: AbortSignal;
}

export interface Followed<T> {
  /** The last snapshot seen. */
  last: T;
  /** True when watching was stopped through the signal before the condition held. */
  stopped: boolean;
}

/**
 * Subscribes to `field` of `document` and resolves once `isDone(snapshot)` holds (or the signal
 * stops it). Fails with a CliError naming `what` at the deadline, or when the server ends the stream
 * before the condition holds.
 */
export async function follow<T>(
  api: HangarApi,
  query: { document: string; variables: Record<string, unknown>; field: string; what: string },
  isDone: (snapshot: T) => boolean,
  options: FollowOptions<T> = {},
  describe: (snapshot: T) => string = () => "",
): Promise<Followed<T>> {
  let last: T | null = null;
  let finished = false;
  const subscription = api.subscribe<Record<string, T>>(query.document, query.variables, async (data) => {
    const snapshot = data[query.field] as T;
    last = snapshot;
    await options.onUpdate?.(snapshot);
    if (isDone(snapshot)) {
      finished = true;
      subscription.close();
    }
  });
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stopped = new Promise<"stopped">((resolve) => {
    if (!options.signal) return;
    onAbort = () => resolve("stopped");
    if (options.signal.aborted) onAbort();
    else options.signal.addEventListener("abort", onAbort, { once: true });
  });
  const timedOut = new Promise<"timeout">((resolve) => {
    if (options.deadline == null) return;
    timer = setTimeout(() => resolve("timeout"), Math.max(0, options.deadline - Date.now()));
  });
  try {
    const outcome = await Promise.race([subscription.done.then(() => "done" as const), stopped, timedOut]);
    if (outcome === "stopped" && !finished) {
      subscription.close();
      if (last === null) throw new CliError(`stopped before receiving ${query.what}`);
      return { last, stopped: true };
    }
    if (outcome === "timeout" && !finished) {
      subscription.close();
      const state = last === null ? "nothing received yet" : `last seen: ${describe(last)}`;
      throw new CliError(`timed out waiting for ${query.what} (${state})`);
    }
    if (last === null || !finished) {
      const state = last === null ? "" : ` (last seen: ${describe(last)})`;
      throw new CliError(`the server ended the updates of ${query.what} early${state}`);
    }
    return { last, stopped: false };
  } finally {
    clearTimeout(timer);
    if (onAbort) options.signal?.removeEventListener("abort", onAbort);
  }
}

/** Follows a deployment until it is ready (ACTIVE, or SCALED_TO_ZERO after being ready) or has failed. */
export function followDeployment(
  api: HangarApi,
  deploymentId: string,
  options: FollowOptions<DeploymentSnapshot> = {},
): Promise<Followed<DeploymentSnapshot>> {
  return follow<DeploymentSnapshot>(
    api,
    {
      document: `subscription FollowDeployment($id: ID!) { deploymentStatus(deploymentId: $id) { ${DEPLOYMENT_FIELDS} } }`,
      variables: { id: deploymentId },
      field: "deploymentStatus",
      what: `deployment ${deploymentId} to be ready`,
    },
    (d) => READY_STATUSES.has(d.status) || FAILED_STATUSES.has(d.status),
    options,
    (d) => d.status,
  );
}

/** Follows a promotion until SUCCEEDED, FAILED or CANCELED. */
export function followPromotion(
  api: HangarApi,
  promotionId: string,
  options: FollowOptions<PromotionSnapshot> = {},
): Promise<Followed<PromotionSnapshot>> {
  return follow<PromotionSnapshot>(
    api,
    {
      document: `subscription FollowPromotion($id: ID!) { promotionProgress(promotionId: $id) { ${PROMOTION_FIELDS} } }`,
      variables: { id: promotionId },
      field: "promotionProgress",
      what: `promotion ${promotionId} to end`,
    },
    (p) => TERMINAL_PROMOTION_STATUSES.has(p.status),
    options,
    (p) => `${p.status}${p.canaryStage ? `, canary stage ${p.canaryStage}/${p.canaryStages}` : ""}`,
  );
}

/** A deadline `timeoutSeconds` from now, or null without one. */
export function deadlineAfter(timeoutSeconds: number | undefined): number | null {
  return timeoutSeconds === undefined ? null : Date.now() + timeoutSeconds * 1000;
}

/** The last lines of a deployment's logs, as they should be shown after a failure. */
export async function logTail(api: HangarApi, deploymentId: string, last = 30): Promise<string[]> {
  const data = await api.query<{
    deployment: { logs: { at: string; stream: string; replica: string | null; line: string }[] } | null;
  }>(
    "query LogTail($id: ID!, $last: Int) { deployment(id: $id) { logs(last: $last) { at stream replica line } } }",
    {
      id: deploymentId,
      last,
    },
  );
  return (data.deployment?.logs ?? []).map(
    (l) => `  ${l.replica ? `[${l.stream} ${l.replica}]` : `[${l.stream}]`} ${l.line}`,
  );
}

/**
 * Calls `handler` on every SIGINT until the returned function is called. While registered, Ctrl-C no
 * longer ends the process by itself: the handler decides.
 */
export function onInterrupt(handler: () => void): () => void {
  process.on("SIGINT", handler);
  return () => {
    process.off("SIGINT", handler);
  };
}
