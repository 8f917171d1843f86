import type { Database } from "../db/client.ts";
import { isIdOf } from "../domain/ids.ts";
import { TRAFFIC_SPLITTING_STATUSES } from "../domain/promotion.ts";
import type { DeploymentStatus } from "../domain/status.ts";
import type { ChangeBus } from "../events/bus.ts";

export interface DeploymentRoute {
  id: string;
  modelId: string;
  status: DeploymentStatus;
  deleted: boolean;
}

export interface EnvironmentRoute {
  id: string;
  currentDeploymentId: string | null;
  /** During a canary ramp: the new deployment and the percentage of requests it takes. */
  canary: { deploymentId: string; percent: number } | null;
}

export interface ModelRoute {
  id: string;
  deleted: boolean;
  developmentDeploymentId: string | null;
  /** Live environments by name: their current deployment, if any, and a canary taking a share. */
  environments: Map<string, EnvironmentRoute>;
}

/**
 * One load per key at a time, its result kept until an event drops it. A
 * miss is not kept: requests for made-up IDs must not grow the cache.
 */
function cachedLoad<T>(cache: Map<string, Promise<T | null>>, id: string, load: () => Promise<T | null>) {
  let cached = cache.get(id);
  if (!cached) {
    const loading = load();
    cached = loading;
    cache.set(id, loading);
    loading.then(
      (value) => {
        if (value === null && cache.get(id) === loading) cache.delete(id);
      },
      () => {
        if (cache.get(id) === loading) cache.delete(id);
      },
    );
  }
  return cached;
}

/**
 * The gateway's view of models, environments and deployments, cached in
 * memory so that a request costs no database query. Every change to these
 * rows comes with a model event, whose notification drops the cached entries.
 */
export class RouteTable {
  private readonly models = new Map<string, Promise<ModelRoute | null>>();
  private readonly deployments = new Map<string, Promise<DeploymentRoute | null>>();
  private unsubscribe: (() => void) | null = null;

  constructor(private readonly db: Database) {}

  start(bus: ChangeBus): void {
    this.unsubscribe = bus.on((change) => {
      if (change.kind === "resync") {
        this.models.clear();
        this.deployments.clear();
        return;
      }
      if (change.kind !== "event") return;
      this.models.delete(change.modelId);
      if (change.deploymentId) this.deployments.delete(change.deploymentId);
    });
  }

  stop(): void {
    this.unsubscribe?.();
  }

  model(id: string): Promise<ModelRoute | null> {
    if (!isIdOf("Model", id)) return Promise.resolve(null);
    return cachedLoad(this.models, id, () => this.loadModel(id));
  }

  deployment(id: string): Promise<DeploymentRoute | null> {
    if (!isIdOf("Deployment", id)) return Promise.resolve(null);
    return cachedLoad(this.deployments, id, () => this.loadDeployment(id));
  }

  /** Forgets a model's routes so the next read sees the database. */
  forgetModel(modelId: string): void {
    this.models.delete(modelId);
  }

  /** Forgets a deployment so the next read sees the database (used while waiting for it). */
  refresh(deploymentId: string): void {
    this.deployments.delete(deploymentId);
  }

  private async loadModel(id: string): Promise<ModelRoute | null> {
    const model = await this.db.prisma.model.findUnique({
      where: { id },
      select: {
        id: true,
        deletedAt: true,
        deployments: { where: { kind: "DEVELOPMENT", deletedAt: null }, select: { id: true } },
        environments: {
          where: { deletedAt: null },
          select: {
            id: true,
            name: true,
            currentDeploymentId: true,
            promotions: {
              where: {
                status: { in: [...TRAFFIC_SPLITTING_STATUSES] },
                activeEnvironmentId: { not: null },
              },
              select: { deploymentId: true, percentTraffic: true },
            },
          },
        },
      },
    });
    if (!model) return null;
    return {
      id: model.id,
      deleted: model.deletedAt !== null,
      developmentDeploymentId: model.deployments[0]?.id ?? null,
      environments: new Map(
        model.environments.map((e) => {
          const ramp = e.promotions[0];
          const canary =
            ramp?.deploymentId && ramp.percentTraffic > 0 && e.currentDeploymentId
              ? { deploymentId: ramp.deploymentId, percent: ramp.percentTraffic }
              : null;
          return [e.name, { id: e.id, currentDeploymentId: e.currentDeploymentId, canary }];
        }),
      ),
    };
  }

  private async loadDeployment(id: string): Promise<DeploymentRoute | null> {
    const row = await this.db.prisma.deployment.findUnique({
      where: { id },
      select: { id: true, modelId: true, status: true, deletedAt: true },
    });
    return row
      ? { id: row.id, modelId: row.modelId, status: row.status, deleted: row.deletedAt !== null }
      : null;
  }
}
