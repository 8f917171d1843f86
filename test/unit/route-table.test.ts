import { describe, expect, it } from "vitest";
import type { Database } from "../../src/db/client.ts";
import { newId } from "../../src/domain/ids.ts";
import { ChangeBus } from "../../src/events/bus.ts";
import { RouteTable } from "../../src/gateway/routes.ts";

const MODEL = newId("Model");
const DEPLOYMENT = newId("Deployment");

/** A database whose two reads the table makes are counted, with the deployment's status as set here. */
function fakeDatabase() {
  const state = { status: "ACTIVE", modelReads: 0, deploymentReads: 0, hold: null as Promise<void> | null };
  const prisma = {
    model: {
      findUnique: async () => {
        state.modelReads++;
        return { id: MODEL, deletedAt: null, deployments: [{ id: DEPLOYMENT }], environments: [] };
      },
    },
    deployment: {
      findUnique: async () => {
        state.deploymentReads++;
        const status = state.status;
        if (state.hold) await state.hold;
        return { id: DEPLOYMENT, modelId: MODEL, status, deletedAt: null };
      },
    },
  };
  return { db: { prisma } as unknown as Database, state };
}

/** The notice of the deployment's status change to SCALED_TO_ZERO. */
const scaledToZero = {
  kind: "event",
  modelId: MODEL,
  seq: 2,
  deploymentId: DEPLOYMENT,
  type: "DEPLOYMENT_STATUS_CHANGED",
  deploymentStatus: "SCALED_TO_ZERO",
} as const;

function started() {
  const { db, state } = fakeDatabase();
  const bus = new ChangeBus();
  const table = new RouteTable(db);
  table.start(bus);
  return { table, bus, state };
}

describe("RouteTable", () => {
  it("takes a deployment's new status from its notice, keeping the model's routes and reading nothing", async () => {
    const { table, bus, state } = started();
    await table.model(MODEL);
    await table.deployment(DEPLOYMENT);
    bus.emitLocal(scaledToZero);
    expect(table.modelNow(MODEL)?.developmentDeploymentId).toBe(DEPLOYMENT);
    expect(table.deploymentNow(DEPLOYMENT)?.status).toBe("SCALED_TO_ZERO");
    expect((await table.deployment(DEPLOYMENT))?.status).toBe("SCALED_TO_ZERO");
    expect(state).toMatchObject({ modelReads: 1, deploymentReads: 1 });
  });

  it("drops the model's and the deployment's routes on any other event, and reads them again", async () => {
    const { table, bus, state } = started();
    await table.model(MODEL);
    await table.deployment(DEPLOYMENT);
    state.status = "DEACTIVATED";
    bus.emitLocal({
      kind: "event",
      modelId: MODEL,
      seq: 2,
      deploymentId: DEPLOYMENT,
      type: "ENVIRONMENT_UPDATED",
    });
    expect(table.modelNow(MODEL)).toBeUndefined();
    expect(table.deploymentNow(DEPLOYMENT)).toBeUndefined();
    expect((await table.deployment(DEPLOYMENT))?.status).toBe("DEACTIVATED");
    await table.model(MODEL);
    expect(state).toMatchObject({ modelReads: 2, deploymentReads: 2 });
  });

  it("treats a notice without a type (from an older member) as any other event", async () => {
    const { table, bus } = started();
    await table.deployment(DEPLOYMENT);
    bus.emitLocal({ kind: "event", modelId: MODEL, seq: 2, deploymentId: DEPLOYMENT });
    expect(table.deploymentNow(DEPLOYMENT)).toBeUndefined();
  });

  it("drops a read still under way when a status notice comes: the read may be older than the notice", async () => {
    const { table, bus, state } = started();
    let release = () => {};
    state.hold = new Promise<void>((resolve) => {
      release = resolve;
    });
    const first = table.deployment(DEPLOYMENT);
    state.status = "SCALED_TO_ZERO";
    bus.emitLocal(scaledToZero);
    state.hold = null;
    release();
    expect((await first)?.status).toBe("ACTIVE");
    expect(table.deploymentNow(DEPLOYMENT)).toBeUndefined();
    expect((await table.deployment(DEPLOYMENT))?.status).toBe("SCALED_TO_ZERO");
    expect(state.deploymentReads).toBe(2);
  });
});
