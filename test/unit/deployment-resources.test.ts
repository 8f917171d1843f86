/**
 * What a deployment's replicas run with (API.md section 9), as the deployment controller settles it:
 * its build resolves the resources once and the row keeps them, through rebuilds whatever the server's
 * defaults have become, and a promotion's copy runs with its source's. The runtime gets them in the spec.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Resources } from "../../src/domain/resources.ts";
import { Prisma } from "../../src/generated/prisma/client.ts";
import { insertDeployment } from "../../src/store/deployments.ts";
import { useControllerWorld } from "../support/controller-world.ts";

const w = useControllerWorld();
const DEFAULTS: Resources = { cpu: 1, memoryMb: 1024, pids: 256 };

async function rowResources(id: string): Promise<unknown> {
  return (await w.db.prisma.deployment.findUniqueOrThrow({ where: { id } })).resources;
}

/** The server's defaults as its settings say (the world's config is the one the controller reads). */
function setDefaults(resources: Resources): void {
  w.ctx.config.replicaResources = resources;
}

afterEach(() => setDefaults(DEFAULTS));

describe("a deployment's resources", () => {
  it("are resolved by its build, kept on its row and given to the runtime", async () => {
    expect(w.ctx.config.replicaResources).toEqual(DEFAULTS);
    const id = await w.pushed();
    await w.reaches(id, "LOADING_MODEL");
    expect(await rowResources(id)).toEqual(DEFAULTS);
    expect(w.runtime.specOf(id)?.resources).toEqual(DEFAULTS);
    // Written by the log writer in batches.
    await vi.waitFor(async () => {
      const all = await w.db.prisma.logLine.findMany({ where: { deploymentId: id, stream: "build" } });
      expect(all.map((l) => l.line)).toContain("resources: 1 cpu, 1024 MB of memory, 256 processes");
    });
  });

  it("stay what they were through a rebuild (a restarted Hangar), whatever the defaults have become", async () => {
    const id = await w.active();
    setDefaults({ cpu: 2, memoryMb: 4096, pids: 512 });
    await w.restart();
    await vi.waitFor(() => expect(w.runtime.count(id)).toBe(1));
    expect(w.runtime.specOf(id)?.resources).toEqual(DEFAULTS);
    expect(await rowResources(id)).toEqual(DEFAULTS);
    // A deployment built now gets the new defaults.
    const fresh = await w.pushed();
    await w.reaches(fresh, "LOADING_MODEL");
    expect(w.runtime.specOf(fresh)?.resources).toEqual({ cpu: 2, memoryMb: 4096, pids: 512 });
  });

  it("of a row older than the column are resolved at its next build and kept", async () => {
    const id = await w.active();
    await w.db.prisma.deployment.update({ where: { id }, data: { resources: Prisma.DbNull } });
    setDefaults({ cpu: 0.5, memoryMb: 512, pids: 64 });
    await w.restart();
    await vi.waitFor(() => expect(w.runtime.count(id)).toBe(1));
    expect(w.runtime.specOf(id)?.resources).toEqual({ cpu: 0.5, memoryMb: 512, pids: 64 });
    expect(await rowResources(id)).toEqual({ cpu: 0.5, memoryMb: 512, pids: 64 });
  });

  it("of a promotion's copy are its source's, not what its build would resolve", async () => {
    const source = await w.active();
    const row = await w.db.prisma.deployment.findUniqueOrThrow({ where: { id: source } });
    const kept: Resources = { cpu: 0.25, memoryMb: 300, pids: 40 };
    const copy = await w.db.prisma.$transaction((tx) =>
      insertDeployment(tx, {
        modelId: row.modelId,
        name: `copy-${source.slice(-6).toLowerCase()}`,
        kind: "PUBLISHED",
        artifactHash: row.artifactHash,
        environmentName: "production",
        resources: kept,
        message: "copied",
      }),
    );
    await w.controller.reconcile(copy.id);
    await w.reaches(copy.id, "LOADING_MODEL");
    expect(w.runtime.specOf(copy.id)?.resources).toEqual(kept);
    expect(await rowResources(copy.id)).toEqual(kept);
  });
});
