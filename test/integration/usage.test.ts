import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, gqlRaw, modelFolder, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar();
});

afterAll(async () => {
  await hangar?.dispose();
});

const USAGE = `query($from: DateTime!, $to: DateTime!, $modelId: ID) {
  usage(from: $from, to: $to, modelId: $modelId) { deployment { id status } replicaSeconds }
}`;

interface ReplicaRow {
  startedAt: string;
  stoppedAt: string | null;
}

/** What the replicas' own lifetimes say, clipped to [from, to). */
function expectedSeconds(replicas: ReplicaRow[], from: number, to: number): number {
  let total = 0;
  for (const r of replicas) {
    const start = Math.max(Date.parse(r.startedAt), from);
    const stop = Math.min(r.stoppedAt ? Date.parse(r.stoppedAt) : Date.now(), to);
    if (stop > start) total += (stop - start) / 1000;
  }
  return total;
}

describe("usage", () => {
  it("adds up to the replicas' lifetimes, for any window, deleted deployments included", async () => {
    const dep = await pushFolder(
      hangar,
      "metered",
      await modelFolder({ "model.mjs": "export default class M { predict() { return 1; } }" }),
    );
    await waitForStatus(hangar, dep.id, "ACTIVE");
    await gql(
      hangar,
      `mutation($id: ID!) { updateAutoscalingSettings(input: { deploymentId: $id, settings: { minReplica: 2, maxReplica: 2 } }) { __typename } }`,
      { id: dep.id },
    );
    await waitFor(
      async () =>
        (await gql(hangar, `query($id: ID!) { deployment(id: $id) { activeReplicaCount } }`, { id: dep.id }))
          .deployment.activeReplicaCount === 2,
      { what: "two replicas" },
    );
    await gql(hangar, `mutation($id: ID!) { deactivateDeployment(id: $id) { __typename } }`, { id: dep.id });
    await waitForStatus(hangar, dep.id, "INACTIVE");
    await gql(hangar, `mutation($id: ID!) { deleteDeployment(id: $id) { __typename } }`, { id: dep.id });
    const data = await gql(
      hangar,
      `query($id: ID!) { deployment(id: $id) { replicas(includeStopped: true) { startedAt stoppedAt } } }`,
      { id: dep.id },
    );
    const replicas: ReplicaRow[] = data.deployment.replicas;
    expect(replicas).toHaveLength(2);
    expect(replicas.every((r) => r.stoppedAt)).toBe(true);
    const first = Math.min(...replicas.map((r) => Date.parse(r.startedAt)));
    const last = Math.max(...replicas.map((r) => Date.parse(r.stoppedAt as string)));
    const windows: [number, number][] = [
      [first - 60_000, last + 60_000],
      [first + (last - first) / 3, last + 1_000],
      [first - 1_000, first + (last - first) / 2],
    ];
    for (const [from, to] of windows) {
      const result = await gql(hangar, USAGE, {
        from: new Date(from).toISOString(),
        to: new Date(to).toISOString(),
        modelId: dep.model.id,
      });
      expect(result.usage).toHaveLength(1);
      expect(result.usage[0].deployment).toEqual({ id: dep.id, status: "DELETED" });
      expect(result.usage[0].replicaSeconds).toBeCloseTo(expectedSeconds(replicas, from, to), 2);
    }
    const before = await gql(hangar, USAGE, {
      from: new Date(first - 120_000).toISOString(),
      to: new Date(first - 60_000).toISOString(),
      modelId: dep.model.id,
    });
    expect(before.usage).toEqual([]);
  });

  it("refuses a window that ends before it starts", async () => {
    const { body } = await gqlRaw(hangar, USAGE, {
      from: "2026-01-02T00:00:00Z",
      to: "2026-01-01T00:00:00Z",
    });
    expect(body.errors?.[0]?.message).toContain("`to` must be after `from`");
  });
});
