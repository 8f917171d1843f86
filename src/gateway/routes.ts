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

/** A cached load: its promise, and its value once it has resolved (for reads that must not wait). */
interface Cached<T> {
  loading: Promise<T | null>;
  value: T | undefined;
}

/**
 * One load per key at a time, its result kept until an event drops it. A
 * miss is not kept: requests for made-up IDs must not grow the cache.
 */
class LoadCache<T> {
  private readonly entries = new Map<string, Cached<T>>();

  get(id: string, load: () => Promise<T | null>): Promise<T | null> {
    const cached = this.entries.get(id);
    if (cached) return cached.loading;
    const loading = load();
    const entry: Cached<T> = { loading, value: undefined };
    this.entries.set(id, entry);
    loading.then(
      (value) => {
        if (this.entries.get(id) !== entry) return;
        if (value === null) this.entries.delete(id);
        else entry.value = value;
      },
      () => {
        if (this.entries.get(id) === entry) this.entries.delete(id);
      },
    );
    return loading;
  }

  /** The loaded value, or undefined while none is cached (not loaded, loading, dropped, or a miss). */
  peek(id: string): T | undefined {
    return this.entries.get(id)?.value;
  }

  delete(id: string): void {
    this.entries.delete(id);
  }

  /** Replaces a loaded value with `change(value)`; one still loading is dropped (its read may be older). */
  update(id: string, change: (value: T) => T): void {
    const cached = this.entries.get(id);
    if (!cached) return;
    if (cached.value === undefined) {
      this.entries.delete(id);
      return;
    }
    const value = change(cached.value);
    this.entries.set(id, { loading: Promise.resolve(value), value });
  }

  clear(): void {
    this.entries.clear();
  }
}

/**
 * The gateway's view of models, environments and deployments, cached in
 * memory so that a request costs no database query. Every change to these
 * rows comes with a model event, whose notification drops the cached entries.
 */
export class RouteTable {
  private readonly models = new LoadCache<ModelRoute>();
  private readonly deployments = new LoadCache<DeploymentRoute>();
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
      // A status change alone changes no model's routes (every change of an environment's or a
      // canary's deployment comes with an event of its own), and the notice carries the new status:
      // a wake or a scale to zero costs the requests that follow it no read.
      if (change.type === "DEPLOYMENT_STATUS_CHANGED" && change.deploymentId && change.deploymentStatus) {
        const status = change.deploymentStatus;
        this.deployments.update(change.deploymentId, (route) => ({ ...route, status }));
        return;
      }
      this.models.delete(change.modelId);
      if (change.deploymentId) this.deployments.delete(change.deploymentId);
    });
  }

  stop(): void {
    this.unsubscribe?.();
  }

  model(id: string): Promise<ModelRoute | null> {
    if (!isIdOf("Model", id)) return Promise.resolve(null);
    return this.models.get(id, () => this.loadModel(id));
  }

  /**
   * The model's routes as cached, without waiting: undefined when they are not (a read would need
   * the database). Any string may be asked: one that is no model's ID is never cached.
   */
  modelNow(id: string): ModelRoute | undefined {
    return this.models.peek(id);
  }

  deployment(id: string): Promise<DeploymentRoute | null> {
    if (!isIdOf("Deployment", id)) return Promise.resolve(null);
    return this.deployments.get(id, () => this.loadDeployment(id));
  }

  /** The deployment as cached, without waiting: undefined when it is not (see modelNow). */
  deploymentNow(id: string): DeploymentRoute | undefined {
    return this.deployments.peek(id);
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
