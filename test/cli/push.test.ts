import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli } from "../support/cli.ts";
import { deploymentStatus, gql, modelFolder, predict } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";

let hangar: TestHangar;
let env: Record<string, string>;

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
});

afterAll(async () => {
  await hangar?.dispose();
});

/** A model answering `answer` (and the environment it was created for). */
const answering = (answer: string, name?: string) => ({
  "model.mjs": `export default class M {
  constructor({ environment }) { this.environment = environment; }
  async load() {}
  predict(input) { return { answer: ${JSON.stringify(answer)}, input, environment: this.environment }; }
}`,
  ...(name ? { "hangar.json": JSON.stringify({ name }) } : {}),
});

const push = (args: string[], opts: { timeoutMs?: number } = {}) =>
  runCli(["push", ...args], { env, timeoutMs: opts.timeoutMs ?? 90_000 });

/** Statuses in the order the progress lines name them. */
function statusesShown(stderr: string): string[] {
  return [...stderr.matchAll(/^deployment \S+ \(dep_[^)]+\): ([A-Z_]+):/gm)].map((m) => m[1] as string);
}

describe("hangar push", () => {
  it("deploys a folder, shows its progress, and the gateway serves it", async () => {
    const dir = await modelFolder(answering("published", "cli-push"));
    const result = await push([dir, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const deployment = JSON.parse(result.stdout);
    expect(deployment).toMatchObject({ name: "deployment-1", kind: "PUBLISHED", status: "ACTIVE" });
    expect(deployment.id).toMatch(/^dep_/);
    expect(deployment.modelId).toMatch(/^mdl_/);
    expect(deployment.predictUrl).toBe(
      `${hangar.url}/models/${deployment.modelId}/deployments/${deployment.id}/predict`,
    );
    // Progress went to stderr: the packing, the upload, BUILDING first and ACTIVE last.
    expect(result.stderr).toMatch(/Packed 2 files/);
    expect(result.stderr).toMatch(/Uploading .* \(model 'cli-push'\)/);
    const shown = statusesShown(result.stderr);
    expect(shown[0]).toBe("BUILDING");
    expect(shown.at(-1)).toBe("ACTIVE");

    const answer = await predict(
      hangar,
      `/models/${deployment.modelId}/deployments/${deployment.id}/predict`,
      {
        x: 1,
      },
    );
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ answer: "published", input: { x: 1 }, environment: null });
  });

  it("prints the deployment and its predict URL without --json", async () => {
    const dir = await modelFolder(answering("plain", "cli-plain"));
    const result = await push([dir, "--deployment-name", "first"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/Deployment first \(dep_\S+\) of model cli-plain is ACTIVE/);
    expect(result.stdout).toMatch(
      /predict: http:\/\/127\.0\.0\.1:\d+\/models\/mdl_\S+\/deployments\/dep_\S+\/predict/,
    );
  });

  it("names the model after the folder when hangar.json has no name", async () => {
    const parent = await mkdtemp(path.join(tmpdir(), "hangar-cli-"));
    const dir = path.join(parent, "Folder.Named");
    await mkdir(dir);
    await writeFile(path.join(dir, "model.mjs"), answering("x")["model.mjs"]);
    const result = await push([dir, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const data = await gql(hangar, `query { model(name: "folder.named") { id } }`);
    expect(data.model.id).toBe(JSON.parse(result.stdout).modelId);
  });

  it("--development pushes the development deployment, replaced in place on the next push", async () => {
    const dir = await modelFolder(answering("dev one", "cli-dev"));
    const first = await push([dir, "--development", "--json"]);
    expect(first.code, first.stderr).toBe(0);
    const deployment = JSON.parse(first.stdout);
    expect(deployment).toMatchObject({ name: "development", kind: "DEVELOPMENT", status: "ACTIVE" });
    const answer = await predict(hangar, `/models/${deployment.modelId}/development/predict`, {});
    expect(answer.body.answer).toBe("dev one");

    await writeFile(path.join(dir, "model.mjs"), answering("dev two")["model.mjs"]);
    const second = await push([dir, "--development"]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toContain(`(${deployment.id})`);
    expect(second.stdout).toContain(`/models/${deployment.modelId}/development/predict`);
    const after = await predict(hangar, `/models/${deployment.modelId}/development/predict`, {});
    expect(after.body.answer).toBe("dev two");
  });

  it("shows the log tail and exits 1 when the build fails", async () => {
    const dir = await modelFolder({
      "README.md": "no model here",
      "hangar.json": JSON.stringify({ name: "cli-broken" }),
    });
    const result = await push([dir, "--json"]);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout)).toMatchObject({ status: "BUILD_FAILED" });
    expect(result.stderr).toMatch(/Last log lines of deployment-1/);
    expect(result.stderr).toMatch(/\[build\] build failed: the model folder has neither model\.mjs/);
    expect(result.stderr).toMatch(/hangar: deployment deployment-1 \(dep_\S+\) is BUILD_FAILED/);
  });

  it("shows the log tail and exits 1 when the model cannot load", async () => {
    const dir = await modelFolder({
      "model.mjs": `export default class M { async load() { throw new Error("weights missing"); } predict() {} }`,
      "hangar.json": JSON.stringify({ name: "cli-deploy-failed" }),
    });
    const result = await push([dir]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/DEPLOY_FAILED/);
    expect(result.stderr).toMatch(/weights missing/);
  });

  it("--no-wait prints the deployment at once", async () => {
    const dir = await modelFolder(answering("later", "cli-nowait"));
    const result = await push([dir, "--no-wait", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const deployment = JSON.parse(result.stdout);
    expect(deployment.status).toBe("BUILDING");
    expect(statusesShown(result.stderr)).toEqual([]);
  });

  it("--timeout fails with a clear message when the deployment is not ready in time", async () => {
    const dir = await modelFolder({
      "model.mjs": `export default class M { async load() { await new Promise((r) => setTimeout(r, 60_000)); } predict() { return 1; } }`,
      "hangar.json": JSON.stringify({ name: "cli-slow" }),
    });
    const result = await push([dir, "--timeout", "2"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /timed out waiting for deployment dep_\S+ to be ready \((last seen: [A-Z_]+|nothing received yet)\); the deployment goes on/,
    );
    // It gave up before the deployment was ready (its model loads for 60 s), and the deployment goes on.
    const id = /deployment (dep_\S+) to be ready/.exec(result.stderr)?.[1] as string;
    expect(["BUILDING", "DEPLOYING", "LOADING_MODEL"]).toContain(await deploymentStatus(hangar, id));
  });

  it("leaves out what .hangarignore lists", async () => {
    const dir = await modelFolder({
      "model.mjs": `import { existsSync } from "node:fs";
export default class M {
  async load() {}
  predict() {
    const has = (f) => existsSync(new URL(f, import.meta.url));
    return { secret: has("./secret.env"), notes: has("./notes.txt"), kept: has("./kept.txt") };
  }
}`,
      "secret.env": "TOKEN=1",
      "notes.txt": "n",
      "kept.txt": "k",
      ".hangarignore": "*.env\nnotes.txt\n",
      "hangar.json": JSON.stringify({ name: "cli-ignore" }),
    });
    const result = await push([dir, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const deployment = JSON.parse(result.stdout);
    const answer = await predict(
      hangar,
      `/models/${deployment.modelId}/deployments/${deployment.id}/predict`,
      {},
    );
    expect(answer.body).toEqual({ secret: false, notes: false, kept: true });
  });

  it("--environment publishes and follows the promotion it starts to SUCCEEDED", async () => {
    const dir = await modelFolder(answering("staged", "cli-env"));
    // The model must exist to have a staging environment: a first push creates it.
    const first = await push([dir, "--json"]);
    expect(first.code, first.stderr).toBe(0);
    await gql(
      hangar,
      `mutation($id: ID!) { createEnvironment(input: { modelId: $id, name: "staging" }) { __typename } }`,
      {
        id: JSON.parse(first.stdout).modelId,
      },
    );

    const result = await push([dir, "--environment", "staging", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    const deployment = JSON.parse(result.stdout);
    expect(deployment.status).toBe("ACTIVE");
    expect(deployment.promotion).toMatchObject({
      status: "SUCCEEDED",
      environment: "staging",
      sourceDeploymentId: deployment.id,
      percentTrafficToNewVersion: 100,
    });
    expect(deployment.promotion.steps.map((s: { name: string }) => s.name)).toEqual([
      "CREATE_DEPLOYMENT",
      "START_DEPLOYMENT",
      "ACTIVATE",
    ]);
    expect(result.stderr).toMatch(/promotion prm_\S+: deployment-2 into staging/);
    expect(result.stderr).toMatch(/ACTIVATE: SUCCEEDED/);
    const answer = await predict(hangar, `/models/${deployment.modelId}/environments/staging/predict`, {});
    expect(answer.body).toMatchObject({ answer: "staged", environment: "staging" });
    expect(answer.deploymentId).toBe(deployment.id);
  });

  it("--promote publishes, then promotes into production", async () => {
    const dir = await modelFolder(answering("in production", "cli-promote"));
    const result = await push([dir, "--promote"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(
      /Promoted into production: http:\/\/127\.0\.0\.1:\d+\/models\/(mdl_\S+)\/environments\/production\/predict/,
    );
    expect(result.stderr).toMatch(/START_DEPLOYMENT: SUCCEEDED/);
    const data = await gql(hangar, `query { model(name: "cli-promote") { id } }`);
    const answer = await predict(hangar, `/models/${data.model.id}/predict`, {});
    expect(answer.body.answer).toBe("in production");
  });

  it("fails with exit 1 for an unknown environment, naming it", async () => {
    const dir = await modelFolder(answering("x", "cli-promote"));
    const result = await push([dir, "--environment", "nowhere"]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/no environment named 'nowhere'/);
    expect(result.stderr).toMatch(/NOT_FOUND|not found/);
  });

  it("refuses a wrong key and an unreachable server with exit 1", async () => {
    const dir = await modelFolder(answering("x", "cli-key"));
    const wrong = await runCli(["push", dir], { env: cliEnv(hangar, "hk_wrong") });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/refused the API key/);
    const unreachable = await runCli(["push", dir], {
      env: { HANGAR_URL: "http://127.0.0.1:9", HANGAR_API_KEY: "hk_x" },
    });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach Hangar at http:\/\/127\.0\.0\.1:9/);
  });
});

describe("hangar push usage errors (exit 2, nothing sent)", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await modelFolder(answering("x", "cli-usage"));
  });

  const cases: Array<[string, () => string[], RegExp]> = [
    [
      "--promote with --environment",
      () => [dir, "--promote", "--environment", "staging"],
      /--promote and --environment/,
    ],
    ["--watch with --promote", () => [dir, "--watch", "--promote"], /--watch cannot be combined/],
    [
      "--watch with --environment",
      () => [dir, "--watch", "--environment", "staging"],
      /--watch cannot be combined/,
    ],
    [
      "--development with --promote",
      () => [dir, "--development", "--promote"],
      /--development cannot be combined/,
    ],
    [
      "--deployment-name with --development",
      () => [dir, "--development", "--deployment-name", "x"],
      /--deployment-name/,
    ],
    [
      "--watch with --no-wait",
      () => [dir, "--watch", "--no-wait"],
      /--watch cannot be combined with --no-wait/,
    ],
    ["a folder that does not exist", () => [path.join(dir, "missing")], /no such folder/],
    ["a file instead of a folder", () => [path.join(dir, "model.mjs")], /not a folder/],
    ["an invalid --model", () => [dir, "--model", "Not Valid"], /invalid model name 'Not Valid'/],
    ["an invalid --environment", () => [dir, "--environment", "Bad_Env"], /invalid environment name/],
    ["an invalid --deployment-name", () => [dir, "--deployment-name", "a/b"], /invalid deployment name/],
    ["a bad --timeout", () => [dir, "--timeout", "soon"], /--timeout must be a number/],
    ["an unknown flag", () => [dir, "--frobnicate"], /unknown option/],
  ];

  it.each(cases)("%s", async (_name, args, message) => {
    const result = await push(args());
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(message);
    expect(result.stdout).toBe("");
  });

  it("a folder whose name is not a valid model name, without --model or hangar.json", async () => {
    const parent = await mkdtemp(path.join(tmpdir(), "hangar-cli-"));
    const bad = path.join(parent, "my model!");
    await mkdir(bad);
    await writeFile(path.join(bad, "model.mjs"), answering("x")["model.mjs"]);
    const result = await push([bad]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/invalid model name 'my model!'.*from the folder's name.*--model/);
    const fixed = await push([bad, "--model", "ok-name", "--no-wait"]);
    expect(fixed.code, fixed.stderr).toBe(0);
  });

  it("an empty folder (or one whose every file is ignored)", async () => {
    const ignored = await modelFolder({ "model.mjs": "", ".hangarignore": "*\n" });
    const result = await push([ignored]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/nothing to push/);
  });

  it("a hangar.json that is not JSON", async () => {
    const broken = await modelFolder({ "model.mjs": "", "hangar.json": "{ nope" });
    const result = await push([broken]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/hangar\.json is not valid JSON/);
  });

  it("no server configured", async () => {
    const result = await runCli(["push", dir], { env: { HANGAR_URL: undefined, HANGAR_API_KEY: undefined } });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/no server URL and API key configured/);
  });
});
