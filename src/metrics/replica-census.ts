/**
 * hangar_replicas (API.md section 11): the replicas this member runs, by deployment and state, labelled
 * with their model, read when /metrics is scraped (one query for the models of the deployments run here).
 */
import type { PrismaClient } from "../generated/prisma/client.ts";
import type { ReplicaState } from "../runtime/replica.ts";
import type { Runtime } from "../runtime/runtime.ts";
import type { ReplicaCount } from "./prometheus.ts";

/** The runtime's states under the names the API gives them (ReplicaState). */
const STATE_NAMES: Record<ReplicaState, string> = {
  starting: "STARTING",
  ready: "READY",
  draining: "STOPPING",
  stopped: "STOPPED",
};

export function replicaCensus(
  runtime: Pick<Runtime, "deploymentIds" | "replicasOf">,
  prisma: PrismaClient,
): () => Promise<ReplicaCount[]> {
  // A deployment's model never changes: each is looked up once.
  const models = new Map<string, string>();
  return async () => {
    const ids = runtime.deploymentIds();
    const unknown = ids.filter((id) => !models.has(id));
    if (unknown.length > 0) {
      try {
        const rows = await prisma.deployment.findMany({
          where: { id: { in: unknown } },
          select: { id: true, modelId: true },
        });
        for (const row of rows) models.set(row.id, row.modelId);
      } catch {
        // The database away: those deployments' replicas are left out of this scrape, not the scrape.
      }
    }
    const runHere = new Set(ids);
    for (const id of models.keys()) if (!runHere.has(id)) models.delete(id);
    const counts: ReplicaCount[] = [];
    for (const id of ids) {
      if (!models.has(id)) continue;
      const byState = new Map<string, number>();
      for (const replica of runtime.replicasOf(id)) {
        const state = STATE_NAMES[replica.state];
        byState.set(state, (byState.get(state) ?? 0) + 1);
      }
      for (const [state, count] of byState) {
        counts.push({ model: models.get(id) as string, deployment: id, state, count });
      }
    }
    return counts;
  };
}
