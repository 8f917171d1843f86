import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliProcess, cliEnv, runCli, spawnCli } from "../support/cli.ts";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import {
  createEnvironment as createEnvironmentOf,
  promoteTo,
  promotionOf,
  waitForPromotion,
} from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

let hangar: TestHangar;
let env: Record<string, string>;
let modelId: string;
const deployments: string[] = [];
const running: CliProcess[] = [];

const version = (v: number, load = "") => ({
  "model.mjs": `export default class M {
  async load() { ${load} }
  predict() { return { version: ${v} }; }
}`,
});

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
  for (const v of [1, 2, 3]) {
    const deployment = await pushFolder(hangar, "cli-promo", await modelFolder(version(v)));
    deployments.push(deployment.id);
    modelId = deployment.model.id;
  }
  for (const id of deployments) await waitForStatus(hangar, id, "ACTIVE");
});

afterAll(async () => {
  for (const cli of running) cli.signal("SIGKILL");
  await hangar?.dispose();
});

function createEnvironment(name: string, promotionSettings: Record<string, unknown> = {}): Promise<string> {
  return createEnvironmentOf(hangar, { modelId, name, promotionSettings });
}

async function promotionStatus(id: string): Promise<string> {
  return (await promotionOf(hangar, id, "status")).status;
}

/** Promotes through the API and waits for it to succeed (setting up what the CLI then ramps from). */
async function promoteAndWait(deploymentId: string, environment: string) {
  await waitForPromotion(hangar, (await promoteTo(hangar, deploymentId, environment)).id, "SUCCEEDED");
}

async function cancel(environmentId: string) {
  return gql(hangar, `mutation($id: ID!) { cancelPromotion(environmentId: $id) { __typename } }`, {
    id: environmentId,
  });
}

function start(args: string[]): CliProcess {
  const cli = spawnCli(args, { env, timeoutMs: 120_000 });
  running.push(cli);
  return cli;
}

const promotionId = (output: string) => output.match(/promotion (prm_[\w-]+)/)?.[1] as string;

describe("hangar promote", () => {
  it("shows the three steps on stderr and prints the final promotion with --json", async () => {
    const [first] = deployments as [string];
    const result = await runCli(["promote", first, "--json"], { env });
    expect(result.code, result.stderr).toBe(0);
    const promotion = JSON.parse(result.stdout);
    expect(promotion).toMatchObject({
      status: "SUCCEEDED",
      environment: "production",
      modelId,
      sourceDeploymentId: first,
      deploymentId: first,
      percentTrafficToNewVersion: 100,
      errorMessage: null,
    });
    expect(promotion.id).toMatch(/^prm_/);
    expect(promotion.steps.map((s: { name: string; status: string }) => `${s.name} ${s.status}`)).toEqual([
      "CREATE_DEPLOYMENT SKIPPED",
      "START_DEPLOYMENT SUCCEEDED",
      "ACTIVATE SUCCEEDED",
    ]);
    expect(result.stderr).toContain(`promotion ${promotion.id}: deployment-1 into production`);
    expect(result.stderr).toMatch(/CREATE_DEPLOYMENT: SKIPPED/);
    expect(result.stderr).toMatch(/START_DEPLOYMENT: SUCCEEDED/);
    expect(result.stderr).toMatch(/ACTIVATE: SUCCEEDED/);
    expect((await predict(hangar, `/models/${modelId}/predict`, {})).body).toEqual({ version: 1 });
  });

  it("prints a summary with the environment's predict URL without --json", async () => {
    const [, second] = deployments as [string, string];
    await createEnvironment("plain");
    const result = await runCli(["promote", second, "--environment", "plain"], { env });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /Promotion prm_\S+ SUCCEEDED: deployment-2 now serves plain of model cli-promo/,
    );
    expect(result.stdout).toContain(`/models/${modelId}/environments/plain/predict`);
  });

  it("with ramp-up, shows every canary stage's percentage in order", async () => {
    const [first, second] = deployments as [string, string];
    await createEnvironment("canary", { rampUpWhilePromoting: true, rampUpDurationSeconds: 3 });
    await promoteAndWait(first, "canary");
    const result = await runCli(["promote", second, "--environment", "canary", "--json"], { env });
    expect(result.code, result.stderr).toBe(0);
    const stages = [
      ...result.stderr.matchAll(/canary stage (\d+)\/10: (\d+)% of traffic to the new version/g),
    ];
    expect(stages.map((m) => Number(m[1]))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(stages.map((m) => Number(m[2]))).toEqual([10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
    expect(result.stderr.indexOf("promotion RAMPING_UP")).toBeLessThan(
      result.stderr.indexOf("canary stage 1/10"),
    );
    expect(JSON.parse(result.stdout)).toMatchObject({
      status: "SUCCEEDED",
      canaryStage: 10,
      canaryStages: 10,
    });
  });

  it("exits 1 with the reason when the promotion is canceled", async () => {
    const [first, second] = deployments as [string, string];
    const environmentId = await createEnvironment("slow", {
      rampUpWhilePromoting: true,
      rampUpDurationSeconds: 600,
    });
    await promoteAndWait(first, "slow");
    const cli = start(["promote", second, "--environment", "slow", "--json"]);
    await cli.waitForOutput("canary stage 1/10");

    // A second promotion into the same environment is refused meanwhile.
    const second_ = await runCli(["promote", deployments[2] as string, "--environment", "slow"], { env });
    expect(second_.code).toBe(1);
    expect(second_.stderr).toMatch(/in progress/);

    await cancel(environmentId);
    const result = await cli.result;
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: "CANCELED", percentTrafficToNewVersion: 0 });
    expect(result.stderr).toMatch(/promotion CANCELED/);
    expect(result.stderr).toMatch(/hangar: promotion prm_\S+ into slow was canceled/);
  });

  it("without a terminal, Ctrl-C stops watching and leaves the promotion running (exit 1)", async () => {
    const [, , third] = deployments as [string, string, string];
    const environmentId = await createEnvironment("ctrlc", {
      rampUpWhilePromoting: true,
      rampUpDurationSeconds: 600,
    });
    await promoteAndWait(deployments[0] as string, "ctrlc");
    const cli = start(["promote", third, "--environment", "ctrlc"]);
    await cli.waitForOutput("canary stage 1/10");
    cli.signal("SIGINT");
    const result = await cli.result;
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/stopped watching promotion prm_\S+ \(RAMPING_UP\); it goes on/);
    expect(await promotionStatus(promotionId(result.stderr))).toBe("RAMPING_UP");
    await cancel(environmentId);
  });

  it("exits 1 with the error message when the promotion fails", async () => {
    await createEnvironment("tight", { progressDeadlineSeconds: 1 });
    const slow = await pushFolder(
      hangar,
      "cli-promo",
      await modelFolder(version(9, "await new Promise((r) => setTimeout(r, 30_000));")),
    );
    const result = await runCli(["promote", slow.id, "--environment", "tight"], { env });
    expect(result.code).toBe(1);
    // (On a loaded machine the promotion may already have failed when the CLI subscribes.)
    expect(result.stderr).toMatch(/START_DEPLOYMENT: FAILED \(.*progress deadline/);
    expect(result.stderr).toMatch(/hangar: promotion prm_\S+ into tight FAILED: .+/);
  });

  it("--no-wait prints the promotion as soon as it has started", async () => {
    const [first] = deployments as [string];
    await createEnvironment("later");
    const result = await runCli(["promote", first, "--environment", "later", "--no-wait", "--json"], { env });
    expect(result.code, result.stderr).toBe(0);
    const promotion = JSON.parse(result.stdout);
    expect(promotion.id).toMatch(/^prm_/);
    expect(promotion.environment).toBe("later");
    expect(result.stderr).not.toMatch(/START_DEPLOYMENT/);
    await waitForPromotion(hangar, promotion.id, "SUCCEEDED");
  });

  it("reports refused promotions with exit 1 and usage errors with exit 2", async () => {
    const unknown = await runCli(["promote", "dep_doesnotexist"], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/NOT_FOUND|not found/);

    const serving = await runCli(["promote", deployments[0] as string], { env }); // already serves production
    expect(serving.code).toBe(1);
    expect(serving.stderr).toMatch(/INVALID_STATE|invalid state/);

    const badName = await runCli(["promote", deployments[0] as string, "--environment", "Not_Valid"], {
      env,
    });
    expect(badName.code).toBe(2);
    expect(badName.stderr).toMatch(/invalid environment name/);

    const missing = await runCli(["promote"], { env });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing required argument/);

    const badTimeout = await runCli(["promote", deployments[0] as string, "--timeout", "0"], { env });
    expect(badTimeout.code).toBe(2);
  });

  // `script` (util-linux) gives the CLI a real terminal: the live frame, and Ctrl-C as the terminal sends it.
  const hasScript = spawnSync("script", ["--version"]).status === 0;

  it.skipIf(!hasScript)(
    "on a terminal, Ctrl-C asks, and choosing to cancel cancels the promotion",
    async () => {
      const [first, second] = deployments as [string, string];
      await createEnvironment("tty", { rampUpWhilePromoting: true, rampUpDurationSeconds: 600 });
      await promoteAndWait(first, "tty");
      const bin = fileURLToPath(new URL("../../bin/hangar.mjs", import.meta.url));
      const command = `stty cols 120 rows 40; exec ${process.execPath} ${bin} promote ${second} --environment tty`;
      const child = spawn("script", ["-qec", command, "/dev/null"], {
        env: {
          PATH: process.env.PATH ?? "",
          HOME: process.env.HOME ?? "/tmp",
          TERM: "xterm",
          NO_COLOR: "1",
          ...env,
        },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let output = "";
      child.stdout.on("data", (chunk: Buffer) => {
        output += chunk.toString();
      });
      const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
      const shown = (text: string) =>
        waitFor(() => output.includes(text), { what: `"${text}" on the terminal` });
      try {
        await shown("stage 1/10"); // the live frame's canary bar
        child.stdin.write("\x03"); // Ctrl-C
        await shown("What now?");
        child.stdin.write("\x1b[B"); // down: "Cancel the promotion"
        await shown("❯ Cancel the promotion");
        child.stdin.write("\r");
        expect(await exited).toBe(1);
      } finally {
        child.kill("SIGKILL");
      }
      expect(output).toMatch(/into tty was canceled/);
      expect(promotionId(output)).toMatch(/^prm_/);
      expect(await promotionStatus(promotionId(output))).toBe("CANCELED");
    },
  );
});
