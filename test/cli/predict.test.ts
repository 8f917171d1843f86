import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli } from "../support/cli.ts";
import { gql, modelFolder, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

// biome-ignore lint/suspicious/noExplicitAny: test data is inspected loosely.
type Json = any;

let hangar: TestHangar;
let env: Record<string, string>;
let v1: Json;
let v2: Json;
let dev: Json;

const MODEL = (version: string) => ({
  "model.mjs": `export default class M {
    constructor({ environment }) { this.environment = environment; }
    predict(input) {
      if (input.fail) throw new Error("the model refused: " + input.fail);
      return { version: "${version}", environment: this.environment, input };
    }
  }`,
});

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
  v1 = await pushFolder(hangar, "predicted", await modelFolder(MODEL("v1")));
  v2 = await pushFolder(hangar, "predicted", await modelFolder(MODEL("v2")));
  dev = await pushFolder(hangar, "predicted", await modelFolder(MODEL("dev")), { development: true });
  await gql(
    hangar,
    `mutation($id: ID!) { createEnvironment(input: { modelId: $id, name: "staging" }) { __typename } }`,
    { id: v1.model.id },
  );
  for (const environment of ["production", "staging"]) {
    const id = environment === "production" ? v1.id : v2.id;
    const promotion = (
      await gql(
        hangar,
        `mutation($id: ID!, $env: String!) { promote(input: { deploymentId: $id, environment: $env }) { ... on Promotion { id } } }`,
        { id, env: environment },
      )
    ).promote;
    await waitFor(
      async () =>
        (await gql(hangar, `query($id: ID!) { promotion(id: $id) { status } }`, { id: promotion.id }))
          .promotion.status === "SUCCEEDED",
      { what: `the promotion into ${environment}` },
    );
  }
  await waitForStatus(hangar, dev.id, "ACTIVE");
});

afterAll(async () => {
  await hangar?.dispose();
});

describe("hangar predict", () => {
  it("routes to production by default, by model name or ID, and names the deployment on stderr", async () => {
    for (const model of ["predicted", v1.model.id]) {
      const result = await runCli(["predict", model, "--data", '{"n": 1}'], { env });
      expect(result.code).toBe(0);
      expect(JSON.parse(result.stdout)).toEqual({ version: "v1", environment: null, input: { n: 1 } });
      expect(result.stderr).toContain(`served by deployment ${v1.id}`);
    }
  });

  it("routes with --environment, --deployment and --development", async () => {
    const staging = await runCli(
      ["predict", "predicted", "--environment", "staging", "--data", "{}", "--json"],
      {
        env,
      },
    );
    expect(staging.code).toBe(0);
    expect(JSON.parse(staging.stdout).version).toBe("v2");
    expect(staging.stderr).toBe("");

    const direct = await runCli(["predict", "predicted", "--deployment", v2.id, "--data", "{}", "--json"], {
      env,
    });
    expect(JSON.parse(direct.stdout).version).toBe("v2");

    const development = await runCli(["predict", "predicted", "--development", "--data", "{}", "--json"], {
      env,
    });
    expect(JSON.parse(development.stdout).version).toBe("dev");
  });

  it("--json prints the answer exactly as it came", async () => {
    const result = await runCli(["predict", "predicted", "--data", '{"a":[1,2]}', "--json"], { env });
    expect(result.stdout).toBe(
      `${JSON.stringify({ version: "v1", environment: null, input: { a: [1, 2] } })}\n`,
    );
  });

  it("reads the body from --data @FILE and from stdin", async () => {
    const file = path.join(await modelFolder({}), "request.json");
    await writeFile(file, JSON.stringify({ from: "file" }));
    const fromFile = await runCli(["predict", "predicted", "--data", `@${file}`, "--json"], { env });
    expect(JSON.parse(fromFile.stdout).input).toEqual({ from: "file" });

    const fromStdin = await runCli(["predict", "predicted", "--json"], { env, input: '{"from": "stdin"}' });
    expect(JSON.parse(fromStdin.stdout).input).toEqual({ from: "stdin" });
  });

  it("bad bodies and conflicting routes are usage errors (exit 2), before anything is sent", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["--data", "{not json"], /not valid JSON/],
      [["--data", "@/nonexistent/request.json"], /cannot read \/nonexistent\/request\.json/],
      [[], /empty/],
      [["--environment", "staging", "--deployment", v2.id, "--data", "{}"], /--environment and --deployment/],
      [["--development", "--environment", "staging", "--data", "{}"], /not both/],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(["predict", "predicted", ...args], { env });
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.stderr).toMatch(message);
      expect(result.stdout).toBe("");
    }
  });

  it("gateway errors are failed operations with their message (exit 1)", async () => {
    const thrown = await runCli(["predict", "predicted", "--data", '{"fail": "no thanks"}'], { env });
    expect(thrown.code).toBe(1);
    expect(thrown.stderr).toMatch(
      /prediction failed \(HTTP 500\): .*the model refused: no thanks.*\[application_error\]/,
    );
    expect(thrown.stderr).toContain(v1.id);
    expect(thrown.stdout).toBe("");

    const noEnvironment = await runCli(["predict", "predicted", "--environment", "nope", "--data", "{}"], {
      env,
    });
    expect(noEnvironment.code).toBe(1);
    expect(noEnvironment.stderr).toMatch(/\[environment_does_not_exist\]\n {2}hint: /);

    const noDeployment = await runCli(["predict", "predicted", "--deployment", "dep_nope", "--data", "{}"], {
      env,
    });
    expect(noDeployment.code).toBe(1);
    expect(noDeployment.stderr).toMatch(/\[deployment_does_not_exist\]/);

    const noModel = await runCli(["predict", "unknown-model", "--data", "{}"], { env });
    expect(noModel.code).toBe(1);
    expect(noModel.stderr).toMatch(/no model named or with ID 'unknown-model'/);
  });
});
