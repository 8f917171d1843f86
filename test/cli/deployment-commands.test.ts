import { spawn, spawnSync } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, DEFAULT_CONFIG, runCli, spawnCli } from "../support/cli.ts";
import { deploymentStatus, gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { promoteTo, waitForPromotion } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

// biome-ignore lint/suspicious/noExplicitAny: --json output is inspected loosely.
type Json = any;

let hangar: TestHangar;
let env: Record<string, string>;

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
});

afterAll(async () => {
  await hangar?.dispose();
});

const CHATTY = {
  "model.mjs": `export default class M {
    predict(input) { console.log("predicting " + input.tag); return { tag: input.tag }; }
  }`,
};

describe("activate, deactivate, delete", () => {
  it("deactivates and activates a deployment, printing its new state", async () => {
    const deployment = await pushFolder(hangar, "controls", await modelFolder(CHATTY));
    await waitForStatus(hangar, deployment.id, "ACTIVE");
    const path = `/models/${deployment.model.id}/deployments/${deployment.id}/predict`;

    const off = await runCli(["deactivate", deployment.id, "--json"], { env });
    expect(off.code).toBe(0);
    const offJson = JSON.parse(off.stdout);
    expect(offJson).toMatchObject({ id: deployment.id, modelId: deployment.model.id, kind: "PUBLISHED" });
    expect(["DEACTIVATING", "INACTIVE"]).toContain(offJson.status);
    await waitForStatus(hangar, deployment.id, "INACTIVE");
    expect((await predict(hangar, path, { tag: "x" })).body.error_code).toBe("deployment_inactive");

    const on = await runCli(["activate", deployment.id], { env });
    expect(on.code).toBe(0);
    expect(on.stdout).toContain(`(${deployment.id}) of controls activated`);
    await waitForStatus(hangar, deployment.id, "ACTIVE");
    expect((await predict(hangar, path, { tag: "y" })).status).toBe(200);
  });

  it("delete without --yes and without a terminal is a usage error and deletes nothing", async () => {
    const deployment = await pushFolder(hangar, "controls", await modelFolder(CHATTY));
    const refused = await runCli(["delete", deployment.id], { env });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/pass --yes/);
    expect(await deploymentStatus(hangar, deployment.id)).not.toBe("DELETED");

    const deleted = await runCli(["delete", deployment.id, "--yes", "--json"], { env });
    expect(deleted.code).toBe(0);
    expect(JSON.parse(deleted.stdout)).toMatchObject({ id: deployment.id, status: "DELETED" });
    expect(await deploymentStatus(hangar, deployment.id)).toBe("DELETED");
  });

  // `script` (util-linux) gives the CLI a pseudo-terminal to ask on.
  const hasScript = spawnSync("script", ["--version"]).status === 0;

  it.skipIf(!hasScript)("delete asks on a terminal, and only 'y' deletes", async () => {
    const deployment = await pushFolder(hangar, "controls", await modelFolder(CHATTY));
    // The answer is typed into the terminal once the question shows.
    const onTerminal = (answer: string) =>
      new Promise<{ code: number | null; output: string }>((resolve) => {
        const command = `node bin/hangar.mjs delete ${deployment.id}`;
        const child = spawn("script", ["-qec", command, "/dev/null"], {
          env: { PATH: process.env.PATH ?? "", HANGAR_CONFIG: DEFAULT_CONFIG, NO_COLOR: "1", ...env },
        });
        let output = "";
        let answered = false;
        child.stdin.on("error", () => {}); // the terminal may be gone by the time the answer lands
        child.stdout.on("data", (chunk: Buffer) => {
          output += chunk.toString();
          if (!answered && output.includes("[y/N]")) {
            answered = true;
            child.stdin.write(`${answer}\n`);
          }
        });
        child.on("close", (code) => resolve({ code, output }));
      });
    const no = await onTerminal("n");
    expect(no.output).toMatch(
      /Delete deployment deployment-\d+ \(dep_\S+\) of model controls for good\? \[y\/N\]/,
    );
    expect(no.code).toBe(1);
    expect(await deploymentStatus(hangar, deployment.id)).not.toBe("DELETED");
    const yes = await onTerminal("y");
    expect(yes.code).toBe(0);
    expect(await deploymentStatus(hangar, deployment.id)).toBe("DELETED");
  });

  it("errors from the API are failed operations with their code and a hint", async () => {
    const unknown = await runCli(["activate", "dep_doesnotexist"], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no deployment with ID 'dep_doesnotexist' \[NOT_FOUND\]\n {2}hint: /);

    // The deployment serving production cannot be deleted.
    const serving = await pushFolder(hangar, "in-use", await modelFolder(CHATTY));
    await waitForPromotion(hangar, (await promoteTo(hangar, serving.id)).id, "SUCCEEDED");
    const inUse = await runCli(["delete", serving.id, "--yes"], { env });
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toMatch(/\[DEPLOYMENT_IN_USE\]/);
  });
});

describe("logs", () => {
  let deployment: Json;

  beforeAll(async () => {
    deployment = await pushFolder(hangar, "logged", await modelFolder(CHATTY));
    await waitForStatus(hangar, deployment.id, "ACTIVE");
  });

  const path = () => `/models/${deployment.model.id}/deployments/${deployment.id}/predict`;

  it("prints the last lines, --tail of them, and --json as one LogLine per line", async () => {
    await predict(hangar, path(), { tag: "first" });
    await waitFor(
      async () => (await runCli(["logs", deployment.id], { env })).stdout.includes("predicting first"),
      { what: "the log line" },
    );
    const all = await runCli(["logs", deployment.id], { env });
    expect(all.code).toBe(0);
    expect(all.stdout).toMatch(/\[build\] /);
    expect(all.stdout).toMatch(/\[rep_\S+ stdout\] predicting first/);

    const api = await gql(
      hangar,
      `query($id: ID!) { deployment(id: $id) { logs(last: 2) { at replica stream line } } }`,
      {
        id: deployment.id,
      },
    );
    const lines = await runCli(["logs", deployment.id, "--tail", "2", "--json"], { env });
    expect(lines.code).toBe(0);
    const parsed = lines.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(parsed).toEqual(api.deployment.logs);

    const bad = await runCli(["logs", deployment.id, "--tail", "many"], { env });
    expect(bad.code).toBe(2);
    const unknown = await runCli(["logs", "dep_nothere"], { env });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/no deployment with ID 'dep_nothere'/);
  });

  it("-f follows new lines until Ctrl-C", async () => {
    const following = spawnCli(["logs", deployment.id, "-f", "--tail", "1", "--json"], { env });
    // The tail comes first...
    await waitFor(() => following.stdout().split("\n").length > 1, { what: "the tail" });
    // ... then lines written later.
    for (const tag of ["live-1", "live-2"]) {
      expect((await predict(hangar, path(), { tag })).status).toBe(200);
      await following.waitForOutput(`predicting ${tag}`);
    }
    following.signal("SIGINT");
    const result = await following.result;
    expect(result.code).toBe(0);
    const lines = result.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    const live = lines.filter((l) => l.line.startsWith("predicting live"));
    expect(live.map((l) => l.line)).toEqual(["predicting live-1", "predicting live-2"]);
  });
});
