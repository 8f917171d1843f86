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
      // A replica that started after its process's last heartbeat counts zero seconds, and usage then
      // lists no row for the deployment.
      expect(result.usage[0]?.replicaSeconds ?? 0).toBeCloseTo(expectedSeconds(replicas, from, to), 2);
    }
    const before = await gql(hangar, USAGE, {
      from: new Date(first - 120_000).toISOString(),
      to: new Date(first - 60_000).toISOString(),
      modelId: dep.model.id,
    });
    expect(before.usage).toEqual([]);
  });

  it("stops counting a replica when it dies with its Hangar process, not when a later start finds it", {
    timeout: 120_000,
  }, async () => {
    const own = await startHangar();
    const dep = await pushFolder(
      own,
      "metered-then-killed",
      await modelFolder({ "model.mjs": "export default class M { predict() { return 1; } }" }),
    );
    await waitForStatus(own, dep.id, "ACTIVE");
    await own.kill();
    const killedAt = Date.now();
    const replicasOf = async (h: TestHangar) =>
      (
        await gql(
          h,
          `query($id: ID!) { deployment(id: $id) { replicas(includeStopped: true) { id startedAt stoppedAt } } }`,
          { id: dep.id },
        )
      ).deployment.replicas as (ReplicaRow & { id: string })[];
    const again = await own.restart();
    try {
      const restartedAt = Date.now();
      const [killed] = (await replicasOf(again)).sort(
        (a, b) => Date.parse(a.startedAt) - Date.parse(b.startedAt),
      );
      expect(killed?.stoppedAt).toBeTruthy();
      // It stopped at its process's last heartbeat: at most one heartbeat (5 s) before the kill.
      const stoppedAt = Date.parse(killed?.stoppedAt as string);
      expect(stoppedAt).toBeLessThanOrEqual(killedAt);
      expect(stoppedAt).toBeGreaterThan(killedAt - 6_000);
      const result = await gql(again, USAGE, {
        from: new Date(Date.parse(killed?.startedAt as string) - 1_000).toISOString(),
        to: new Date(restartedAt - 1_000).toISOString(),
        modelId: dep.model.id,
      });
      // A replica that started after its process's last heartbeat counts zero seconds, and usage then
      // lists no row for the deployment.
      expect(result.usage[0]?.replicaSeconds ?? 0).toBeCloseTo(
        (stoppedAt - Date.parse(killed?.startedAt as string)) / 1000,
        2,
      );
    } finally {
      await again.dispose();
    }
  });

  it("refuses a window that ends before it starts", async () => {
    const { body } = await gqlRaw(hangar, USAGE, {
      from: "2026-01-02T00:00:00Z",
      to: "2026-01-01T00:00:00Z",
    });
    expect(body.errors?.[0]?.message).toContain("`to` must be after `from`");
  });
});
