/**
 * The dashboard query (models -> environments -> current deployment and
 * in-progress promotion with its steps) sends a number of SQL statements that
 * does not grow with the number of models: counted from Prisma's query events
 * on an in-process PGlite, for 10 models and then for 100.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { graphql } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type DashboardResult,
  dashboardContext,
  graphqlDashboard,
  handWrittenDashboard,
  type SeededModel,
  seedDashboard,
} from "../../bench/support/dashboard.ts";
import { type Database, openDatabase } from "../../src/db/client.ts";
import { schema } from "../../src/graphql/schema.ts";

let dataDir: string;
let db: Database;
let statements: string[] = [];
let counting = false;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), "hangar-dashboard-"));
  db = await openDatabase({
    databaseUrl: null,
    dataDir,
    onQuery: (sql) => {
      if (counting) statements.push(sql);
    },
  });
});

afterAll(async () => {
  await db?.close();
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

/** Runs the dashboard query and answers its data with the SQL statements it sent. */
async function measured(): Promise<{ data: DashboardResult; statements: string[] }> {
  statements = [];
  counting = true;
  try {
    const data = await graphqlDashboard(db.prisma);
    return { data, statements };
  } finally {
    counting = false;
  }
}

function check(data: DashboardResult, seeded: SeededModel[]): void {
  const byId = new Map(data.models.edges.map((e) => [e.node.id, e.node]));
  expect(byId.size).toBe(seeded.length);
  for (const model of seeded) {
    const node = byId.get(model.id);
    expect(node?.name).toBe(model.name);
    const [production, staging, ...rest] = node?.environments ?? [];
    expect(rest).toEqual([]);
    expect(production).toMatchObject({ id: model.production.id, name: "production", isProduction: true });
    expect(production?.currentDeployment).toEqual({
      id: model.production.deploymentId,
      name: "v1",
      status: "ACTIVE",
      activeReplicaCount: model.production.readyReplicas,
    });
    expect(staging).toMatchObject({ id: model.staging.id, name: "staging", isProduction: false });
    // A deleted current deployment reads as none; a STARTING replica is not active.
    expect(staging?.currentDeployment).toEqual(
      model.staging.deploymentDeleted
        ? null
        : { id: model.staging.deploymentId, name: "v2", status: "ACTIVE", activeReplicaCount: 1 },
    );
    // A finished promotion is not in progress.
    expect(staging?.inProgressPromotion).toBeNull();
    if (model.production.promotionId === null) {
      expect(production?.inProgressPromotion).toBeNull();
    } else {
      expect(production?.inProgressPromotion).toEqual({
        id: model.production.promotionId,
        status: "RAMPING_UP",
        percentTrafficToNewVersion: (model.index % 10) * 10,
        steps: (model.steps ?? []).map((s) => ({
          name: s.name,
          status: s.status,
          startedAt: s.startedAt,
          finishedAt: s.finishedAt,
        })),
      });
    }
  }
}

describe("dashboard query", () => {
  let small: { data: DashboardResult; statements: string[] };
  let large: { data: DashboardResult; statements: string[] };
  let seeded: SeededModel[];

  beforeAll(async () => {
    seeded = await seedDashboard(db.prisma, 0, 10);
    small = await measured();
    seeded = [...seeded, ...(await seedDashboard(db.prisma, 10, 90))];
    large = await measured();
  }, 120_000);

  it("answers the right data for 10 models and for 100", () => {
    check(small.data, seeded.slice(0, 10));
    check(large.data, seeded);
    // Spot checks beyond the seeding rules: a model promoting, one with a deleted staging deployment.
    const promoting = large.data.models.edges.find((e) => e.node.name === "dashboard-0042")?.node;
    expect(promoting?.environments[0]?.inProgressPromotion?.percentTrafficToNewVersion).toBe(20);
    expect(promoting?.environments[0]?.inProgressPromotion?.steps.map((s) => s.status)).toEqual([
      "SKIPPED",
      "SUCCEEDED",
      "RUNNING",
    ]);
    expect(promoting?.environments[0]?.currentDeployment?.activeReplicaCount).toBe(1);
    const deleted = large.data.models.edges.find((e) => e.node.name === "dashboard-0011")?.node;
    expect(deleted?.environments[1]?.currentDeployment).toBeNull();
    expect(deleted?.environments[0]?.currentDeployment?.activeReplicaCount).toBe(3);
  });

  it("answers what the hand-written Prisma query of the benchmark answers", async () => {
    expect(large.data).toEqual(await handWrittenDashboard(db.prisma));
  });

  it("sends as many SQL statements for 100 models as for 10", () => {
    expect(large.statements.length, large.statements.join("\n")).toBe(small.statements.length);
    // Models, environments, deployments with their READY replica counts, active promotions: one
    // statement each (4 with Prisma 7.10), not one per row.
    expect(small.statements.length).toBeLessThanOrEqual(6);
  });
});

describe("the same fields on rows loaded outside the planned query", () => {
  // A promotion's environment and deployments are read by foreign key (promotionProgress sends
  // snapshots), so their fields load on their own: they must answer what the dashboard answers.
  it("answers currentDeployment, inProgressPromotion, candidateDeployment and counts", async () => {
    const [model] = await seedDashboard(db.prisma, 1002, 1);
    const promotionId = model?.production.promotionId;
    expect(promotionId).toBeTruthy();
    const result = await graphql({
      schema,
      source: `query ($id: ID!, $name: String!) {
        promotion(id: $id) {
          environment { name currentDeployment { name activeReplicaCount } inProgressPromotion { id }
            candidateDeployment { name activeReplicaCount } autoscalingSettings { maxReplica } }
          sourceDeployment { name activeReplicaCount environment { name } activePromotion { id } }
          previousDeployment { name activePromotion { id } }
        }
        model(name: $name) {
          productionEnvironment { name inProgressPromotion { id } }
          developmentDeployment { id }
          environment(name: "staging") { name currentDeployment { name } }
          environments {
            name createdAt predictUrl promotionSettings { cleanupStrategy }
            inProgressPromotion { id status } candidateDeployment { name kind predictUrl activePromotion { id } }
            promotions(first: 5) { edges { node { id status } } }
          }
        }
      }`,
      variableValues: { id: promotionId, name: model?.name },
      contextValue: dashboardContext(db.prisma),
    });
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({
      promotion: {
        environment: {
          name: "production",
          currentDeployment: { name: "v1", activeReplicaCount: 1 },
          inProgressPromotion: { id: promotionId },
          candidateDeployment: { name: "v2", activeReplicaCount: 1 },
          autoscalingSettings: { maxReplica: 1 },
        },
        sourceDeployment: {
          name: "v2",
          activeReplicaCount: 1,
          environment: { name: "staging" },
          activePromotion: { id: promotionId },
        },
        previousDeployment: { name: "v1", activePromotion: null },
      },
      model: {
        productionEnvironment: { name: "production", inProgressPromotion: { id: promotionId } },
        developmentDeployment: null,
        environment: { name: "staging", currentDeployment: { name: "v2" } },
        environments: [
          {
            name: "production",
            createdAt: expect.any(String),
            predictUrl: `http://127.0.0.1:4000/models/${model?.id}/environments/production/predict`,
            promotionSettings: { cleanupStrategy: "SCALE_TO_ZERO" },
            inProgressPromotion: { id: promotionId, status: "RAMPING_UP" },
            candidateDeployment: {
              name: "v2",
              kind: "PUBLISHED",
              predictUrl: `http://127.0.0.1:4000/models/${model?.id}/deployments/${model?.staging.deploymentId}/predict`,
              activePromotion: { id: promotionId },
            },
            promotions: { edges: [{ node: { id: promotionId, status: "RAMPING_UP" } }] },
          },
          {
            name: "staging",
            createdAt: expect.any(String),
            predictUrl: `http://127.0.0.1:4000/models/${model?.id}/environments/staging/predict`,
            promotionSettings: { cleanupStrategy: "SCALE_TO_ZERO" },
            inProgressPromotion: null,
            candidateDeployment: null,
            promotions: { edges: [] },
          },
        ],
      },
    });
  });
});
