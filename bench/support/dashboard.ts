/**
 * The dashboard query of bench/dashboard.ts and test/unit/dashboard-query.test.ts:
 * its text, rows for it written straight into the database, the GraphQL
 * execution in-process, and a hand-written Prisma query answering the same JSON.
 */
import { graphql } from "graphql";
import type { Access } from "../../src/domain/access.ts";
import { DEFAULT_AUTOSCALING } from "../../src/domain/autoscaling.ts";
import { newId } from "../../src/domain/ids.ts";
import { initialSteps, parseSteps, type Step, withStep } from "../../src/domain/promotion.ts";
import { DEFAULT_PROMOTION_SETTINGS } from "../../src/domain/promotion-settings.ts";
import type { Prisma, PrismaClient } from "../../src/generated/prisma/client.ts";
import type { GraphQLContext } from "../../src/graphql/builder.ts";
import { schema } from "../../src/graphql/schema.ts";
import type { RequestContext } from "../../src/services/context.ts";
import { insertModel } from "../../src/store/models.ts";

export const DASHBOARD_QUERY = `query Dashboard { models(first: 100) { edges { node { id name environments { id name isProduction
  currentDeployment { id name status activeReplicaCount }
  inProgressPromotion { id status percentTrafficToNewVersion steps { name status startedAt finishedAt } } } } } } }`;

const PUBLIC_URL = "http://127.0.0.1:4000";

/** A GraphQL context as the server builds one per request; the dashboard needs no service but the config. */
export function dashboardContext(prisma: PrismaClient): GraphQLContext {
  const access: Access = {
    keyId: "key_benchmark000000",
    name: "admin",
    role: "ADMIN",
    modelIds: null,
    environments: null,
  };
  return {
    services: { config: { publicUrl: PUBLIC_URL }, access } as unknown as RequestContext,
    prisma,
    access,
  };
}

/** The dashboard query through the schema, in-process: parse, validate, execute (as graphql() does). */
export async function graphqlDashboard(prisma: PrismaClient): Promise<DashboardResult> {
  const result = await graphql({ schema, source: DASHBOARD_QUERY, contextValue: dashboardContext(prisma) });
  if (result.errors?.length) throw new Error(`dashboard query failed: ${result.errors[0]?.message}`);
  return result.data as unknown as DashboardResult;
}

export interface DashboardStep {
  name: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
}

export interface DashboardEnvironment {
  id: string;
  name: string;
  isProduction: boolean;
  currentDeployment: { id: string; name: string; status: string; activeReplicaCount: number } | null;
  inProgressPromotion: {
    id: string;
    status: string;
    percentTrafficToNewVersion: number;
    steps: DashboardStep[];
  } | null;
}

export interface DashboardResult {
  models: { edges: { node: { id: string; name: string; environments: DashboardEnvironment[] } }[] };
}

const iso = (value: string | null) => (value ? new Date(value).toISOString() : null);

/**
 * The same data with one Prisma findMany (models, their live environments,
 * each one's current deployment with its READY replica count, and its active
 * promotion), shaped as the GraphQL answer's JSON.
 */
export async function handWrittenDashboard(prisma: PrismaClient): Promise<DashboardResult> {
  const models = await prisma.model.findMany({
    where: { deletedAt: null },
    orderBy: [{ createdAt: "asc" }, { id: "asc" }],
    take: 100,
    select: {
      id: true,
      name: true,
      environments: {
        where: { deletedAt: null },
        orderBy: [{ isProduction: "desc" }, { createdAt: "asc" }],
        select: {
          id: true,
          name: true,
          isProduction: true,
          currentDeployment: {
            select: {
              id: true,
              name: true,
              status: true,
              deletedAt: true,
              _count: { select: { replicas: { where: { state: "READY" } } } },
            },
          },
          promotions: {
            where: { activeEnvironmentId: { not: null } },
            select: { id: true, status: true, percentTraffic: true, steps: true },
          },
        },
      },
    },
  });
  return {
    models: {
      edges: models.map((model) => ({
        node: {
          id: model.id,
          name: model.name,
          environments: model.environments.map((env) => {
            const deployment = env.currentDeployment?.deletedAt ? null : env.currentDeployment;
            const promotion = env.promotions[0];
            return {
              id: env.id,
              name: env.name,
              isProduction: env.isProduction,
              currentDeployment: deployment
                ? {
                    id: deployment.id,
                    name: deployment.name,
                    status: deployment.status,
                    activeReplicaCount: deployment._count.replicas,
                  }
                : null,
              inProgressPromotion: promotion
                ? {
                    id: promotion.id,
                    status: promotion.status,
                    percentTrafficToNewVersion: promotion.percentTraffic,
                    steps: parseSteps(promotion.steps).map((s) => ({
                      name: s.name,
                      status: s.status,
                      startedAt: iso(s.startedAt),
                      finishedAt: iso(s.finishedAt),
                    })),
                  }
                : null,
            };
          }),
        },
      })),
    },
  };
}

/** What seedDashboard wrote for one model, for spot checks. */
export interface SeededModel {
  index: number;
  id: string;
  name: string;
  production: { id: string; deploymentId: string; readyReplicas: number; promotionId: string | null };
  staging: {
    id: string;
    deploymentId: string;
    deploymentDeleted: boolean;
    finishedPromotionId: string | null;
  };
  /** The in-progress promotion's steps, as stored. */
  steps: Step[] | null;
}

/**
 * Writes `count` models numbered from `from`, each as createModel leaves it
 * (insertModel: the model, its production environment, their events) plus a
 * "staging" environment, and for each environment a current deployment with
 * replicas. By index i:
 * - production serves v1 with i % 3 + 1 READY replicas (and one STOPPED);
 * - staging serves v2 with one READY and one STARTING replica; v2 is deleted when i % 6 === 5;
 * - every third model (i % 3 === 0) is promoting v2 into production (RAMPING_UP, i % 10 * 10 %);
 * - when i % 4 === 1, staging has a finished promotion (no longer in progress).
 */
export async function seedDashboard(
  prisma: PrismaClient,
  from: number,
  count: number,
): Promise<SeededModel[]> {
  const seeded: SeededModel[] = [];
  for (let index = from; index < from + count; index++) {
    seeded.push(await prisma.$transaction((tx) => seedOne(tx, index)));
  }
  return seeded;
}

type Tx = Parameters<Parameters<PrismaClient["$transaction"]>[0]>[0];

async function seedOne(tx: Tx, index: number): Promise<SeededModel> {
  const name = `dashboard-${String(index).padStart(4, "0")}`;
  const model = await insertModel(tx, name);
  const production = await tx.environment.findFirstOrThrow({
    where: { modelId: model.id, isProduction: true },
  });
  const staging = await tx.environment.create({
    data: {
      id: newId("Environment"),
      modelId: model.id,
      name: "staging",
      liveName: "staging",
      isProduction: false,
      autoscaling: { ...DEFAULT_AUTOSCALING },
      promotionSettings: {},
    },
  });
  const deployment = (label: string, environmentName: string, deleted: boolean) => ({
    id: newId("Deployment"),
    modelId: model.id,
    name: label,
    liveName: deleted ? null : label,
    kind: "PUBLISHED" as const,
    status: deleted ? ("DELETED" as const) : ("ACTIVE" as const),
    artifactHash: `sha256-${label}-${index}`,
    environmentName,
    autoscaling: { ...DEFAULT_AUTOSCALING },
    deletedAt: deleted ? new Date() : null,
  });
  const v2Deleted = index % 6 === 5;
  const v1 = deployment("v1", "production", false);
  const v2 = deployment("v2", "staging", v2Deleted);
  await tx.deployment.createMany({ data: [v1, v2] });
  await tx.environment.update({ where: { id: production.id }, data: { currentDeploymentId: v1.id } });
  await tx.environment.update({ where: { id: staging.id }, data: { currentDeploymentId: v2.id } });

  const readyReplicas = (index % 3) + 1;
  const replica = (deploymentId: string, state: "READY" | "STARTING" | "STOPPED", n: number) => ({
    id: newId("Replica"),
    deploymentId,
    owner: "bench",
    pid: 10_000 + n,
    port: 20_000 + n,
    state,
    readyAt: state === "STARTING" ? null : new Date(),
    stoppedAt: state === "STOPPED" ? new Date() : null,
  });
  await tx.replica.createMany({
    data: [
      ...Array.from({ length: readyReplicas }, (_, n) => replica(v1.id, "READY", n)),
      replica(v1.id, "STOPPED", 10),
      replica(v2.id, "READY", 11),
      replica(v2.id, "STARTING", 12),
    ],
  });

  let promotionId: string | null = null;
  let steps: Step[] | null = null;
  if (index % 3 === 0) {
    const t0 = new Date(Date.UTC(2024, 0, 1, 12, 0, index % 60));
    const t1 = new Date(t0.getTime() + 5_000);
    steps = withStep(initialSteps(), "CREATE_DEPLOYMENT", "SKIPPED", t0, "the same deployment serves");
    steps = withStep(steps, "START_DEPLOYMENT", "RUNNING", t0);
    steps = withStep(steps, "START_DEPLOYMENT", "SUCCEEDED", t1);
    steps = withStep(steps, "ACTIVATE", "RUNNING", t1);
    promotionId = newId("Promotion");
    await tx.promotion.create({
      data: {
        id: promotionId,
        modelId: model.id,
        environmentId: production.id,
        activeEnvironmentId: production.id,
        sourceDeploymentId: v2.id,
        deploymentId: v2.id,
        previousDeploymentId: v1.id,
        status: "RAMPING_UP",
        steps: steps as unknown as Prisma.InputJsonValue,
        settings: { ...DEFAULT_PROMOTION_SETTINGS, rampUpWhilePromoting: true },
        percentTraffic: (index % 10) * 10,
        canaryStage: index % 10,
        canaryStages: 10,
        stageStartedAt: t1,
      },
    });
  }
  let finishedPromotionId: string | null = null;
  if (index % 4 === 1) {
    finishedPromotionId = newId("Promotion");
    const at = new Date(Date.UTC(2023, 11, 31));
    await tx.promotion.create({
      data: {
        id: finishedPromotionId,
        modelId: model.id,
        environmentId: staging.id,
        activeEnvironmentId: null,
        sourceDeploymentId: v2.id,
        deploymentId: v2.id,
        status: "SUCCEEDED",
        steps: initialSteps().map((s) => ({
          ...s,
          status: "SUCCEEDED",
          startedAt: at.toISOString(),
          finishedAt: at.toISOString(),
        })) as unknown as Prisma.InputJsonValue,
        settings: { ...DEFAULT_PROMOTION_SETTINGS },
        percentTraffic: 100,
        finishedAt: at,
      },
    });
  }
  return {
    index,
    id: model.id,
    name,
    production: { id: production.id, deploymentId: v1.id, readyReplicas, promotionId },
    staging: { id: staging.id, deploymentId: v2.id, deploymentDeleted: v2Deleted, finishedPromotionId },
    steps,
  };
}
