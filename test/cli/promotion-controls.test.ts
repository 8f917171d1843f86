import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli, runCliJson } from "../support/cli.ts";
import { modelFolder, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { createEnvironment, promoteTo, promotionOf, waitForPromotion } from "../support/promotions.ts";

// biome-ignore lint/suspicious/noExplicitAny: test data is inspected loosely.
type Json = any;

let hangar: TestHangar;
let env: Record<string, string>;

const MODEL = (version: number) => ({
  "model.mjs": `export default class M { predict() { return { version: ${version} }; } }`,
});

beforeAll(async () => {
  hangar = await startHangar({ env: { HANGAR_AUTOSCALER_INTERVAL_MS: "100" } });
  env = cliEnv(hangar);
});

afterAll(async () => {
  await hangar?.dispose();
});

async function promote(deploymentId: string): Promise<string> {
  return (await promoteTo(hangar, deploymentId, "live")).id;
}

function promotion(id: string): Promise<Json> {
  return promotionOf(hangar, id);
}

/** A model whose "live" environment ramps over 10 minutes, served by v1, with v2 ready to promote. */
async function rampingModel(name: string) {
  const v1 = await pushFolder(hangar, name, await modelFolder(MODEL(1)));
  await createEnvironment(hangar, {
    modelId: v1.model.id,
    name: "live",
    promotionSettings: { rampUpWhilePromoting: true, rampUpDurationSeconds: 600 },
  });
  const first = await promote(v1.id);
  await waitForPromotion(hangar, first, "SUCCEEDED");
  const v2 = await pushFolder(hangar, name, await modelFolder(MODEL(2)));
  await waitForStatus(hangar, v2.id, "ACTIVE");
  return { v1, v2 };
}

async function startRamp(deploymentId: string): Promise<string> {
  const id = await promote(deploymentId);
  await waitForPromotion(hangar, id, "RAMPING_UP");
  return id;
}

describe("promotion controls", () => {
  it("pause, resume and roll-forward a ramping promotion, printing its new state", async () => {
    const { v2 } = await rampingModel("controlled");
    const id = await startRamp(v2.id);

    const paused = await runCliJson(["pause", "live", "--model", "controlled"], { env });
    expect(paused).toMatchObject({ id, status: "PAUSED", environment: "live", canaryStages: 10 });
    expect(paused.percentTrafficToNewVersion).toBeGreaterThanOrEqual(10);
    expect((await promotion(id)).status).toBe("PAUSED");

    const resumed = await runCli(["resume", "live", "--model", "controlled"], { env });
    expect(resumed.code).toBe(0);
    expect(resumed.stdout).toMatch(
      new RegExp(`Promotion ${id} of \\S+ into live \\(model controlled\\): RAMPING_UP`),
    );
    expect(resumed.stdout).toMatch(/canary stage \d+\/10/);
    expect(resumed.stdout).toMatch(/START_DEPLOYMENT\s+SUCCEEDED/);

    const rolled = await runCliJson(["roll-forward", "live", "--model", "controlled"], { env });
    expect(rolled.id).toBe(id);
    await waitForPromotion(hangar, id, "SUCCEEDED");
    expect((await promotion(id)).percentTrafficToNewVersion).toBe(100);
  });

  it("cancel at once, --canary, and --graceful (ramping down)", async () => {
    const { v1, v2 } = await rampingModel("canceled");

    const first = await startRamp(v2.id);
    const canceled = await runCliJson(["cancel", "live", "--model", "canceled"], { env });
    expect(canceled).toMatchObject({ id: first, status: "CANCELED", percentTrafficToNewVersion: 0 });

    const second = await startRamp(v2.id);
    const canary = await runCliJson(["cancel", "live", "--model", v1.model.id, "--canary"], { env });
    expect(canary).toMatchObject({ id: second, status: "CANCELED" });

    const third = await startRamp(v2.id);
    const graceful = await runCliJson(["cancel", "live", "--model", "canceled", "--graceful"], { env });
    expect(graceful.id).toBe(third);
    expect(["RAMPING_DOWN", "CANCELED"]).toContain(graceful.status);
    await waitForPromotion(hangar, third, "CANCELED");
  });

  it("errors: no promotion in progress (1), unknown model or environment (1), bad flags (2)", async () => {
    await pushFolder(hangar, "idle", await modelFolder(MODEL(1)));
    for (const command of ["cancel", "pause", "resume", "roll-forward"]) {
      const result = await runCli([command, "production", "--model", "idle"], { env });
      expect(result.code, command).toBe(1);
      expect(result.stderr).toMatch(/\[NO_PROMOTION_IN_PROGRESS\]/);
    }
    const noEnvironment = await runCli(["pause", "nope", "--model", "idle"], { env });
    expect(noEnvironment.code).toBe(1);
    expect(noEnvironment.stderr).toMatch(/model idle has no environment named 'nope'/);
    const noModel = await runCli(["pause", "production", "--model", "nope"], { env });
    expect(noModel.code).toBe(1);

    const noFlag = await runCli(["pause", "production"], { env });
    expect(noFlag.code).toBe(2);
    expect(noFlag.stderr).toMatch(/--model/);
    const both = await runCli(["cancel", "production", "--model", "idle", "--canary", "--graceful"], { env });
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/--canary or --graceful/);
  });
});
