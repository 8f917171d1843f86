// Several Hangar processes on one PostgreSQL (API.md section 10), each with a data dir of its own as on
// separate machines: what one member received, any member builds and runs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { deploymentStatus, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";

const model = (n: number) => ({
  "model.mjs": `export default class M { predict(input) { return { n: ${n}, echo: input }; } }`,
});

const predictPath = (dep: { id: string; model: { id: string } }) =>
  `/models/${dep.model.id}/deployments/${dep.id}/predict`;

// Only PostgreSQL can have several members: vitest.config.ts runs this file in integration-postgres only.
describe("members sharing one PostgreSQL", () => {
  let a: TestHangar;
  let b: TestHangar;

  beforeAll(async () => {
    a = await startHangar();
    b = await startHangar({ joining: a });
  });

  afterAll(async () => {
    await b?.dispose();
    await a?.dispose();
  });

  it("builds every push, whichever member received it and whichever claims its build", async () => {
    // Before artifacts were shared, the member that claimed a push it had not received failed it
    // (BUILD_FAILED: missing from the data dir), about every other time.
    const pushed = [];
    for (let n = 0; n < 6; n++) {
      pushed.push(await pushFolder(n % 2 === 0 ? a : b, `shared-${n}`, await modelFolder(model(n))));
    }
    for (const dep of pushed) await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    const statuses = await Promise.all(pushed.map((dep) => deploymentStatus(b, dep.id)));
    expect(statuses).toEqual(pushed.map(() => "ACTIVE"));
  });

  it("runs a deployment on a member whose disk never saw its upload", async () => {
    const dep = await pushFolder(a, "pushed-elsewhere", await modelFolder(model(42)));
    await waitForStatus(a, dep.id, "ACTIVE", 60_000);
    // The member that received it goes away; a new one, with an empty disk, is all that is left.
    await a.stop();
    const c = await startHangar({ joining: b });
    try {
      await b.stop();
      const answer = await predict(c, predictPath(dep), { hello: "c" });
      expect(answer.status).toBe(200);
      expect(answer.body).toEqual({ n: 42, echo: { hello: "c" } });
      // The member that takes the deployment over starts it afresh (LOADING_MODEL), and says ACTIVE once
      // its replica is ready; the answer above can come a moment before that write.
      await waitForStatus(c, dep.id, "ACTIVE", 30_000);
    } finally {
      await c.dispose();
    }
  }, 120_000);
});
