import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliProcess, cliEnv, runCli, spawnCli } from "../support/cli.ts";
import { gql, modelFolder, predict } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

let hangar: TestHangar;
let env: Record<string, string>;
const running: CliProcess[] = [];

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
});

afterAll(async () => {
  for (const cli of running) cli.signal("SIGKILL");
  await hangar?.dispose();
});

const version = (v: number, load = "") => `export default class M {
  async load() { ${load} }
  predict() { return { version: ${v}, replica: process.env.HANGAR_REPLICA_ID }; }
}`;

function start(args: string[]): CliProcess {
  const cli = spawnCli(args, { env, timeoutMs: 120_000 });
  running.push(cli);
  return cli;
}

async function modelId(name: string): Promise<string> {
  return (await gql(hangar, `query($name: String!) { model(name: $name) { id } }`, { name })).model.id;
}

/** Polls the development path until it answers `version`. */
async function developmentAnswers(id: string, v: number) {
  return waitFor(
    async () => {
      const answer = await predict(hangar, `/models/${id}/development/predict`, {});
      return answer.status === 200 && answer.body.version === v ? answer.body : null;
    },
    { timeoutMs: 30_000, what: `the development deployment to answer version ${v}` },
  );
}

/** The --json lines printed so far, parsed. */
function jsonLines(cli: CliProcess): Array<Record<string, unknown>> {
  return cli
    .stdout()
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("hangar watch", () => {
  it("pushes a development deployment first, then applies an edit in place; Ctrl-C exits 0", async () => {
    const dir = await modelFolder({
      "model.mjs": version(1),
      "hangar.json": JSON.stringify({ name: "cli-watch" }),
    });
    const cli = start(["watch", dir]);
    await cli.waitForOutput("Watching", 60_000);
    expect(cli.stderr()).toMatch(/'cli-watch' has no development deployment yet: pushing one/);
    const id = await modelId("cli-watch");
    const before = await developmentAnswers(id, 1);

    await writeFile(path.join(dir, "model.mjs"), version(2));
    const after = await developmentAnswers(id, 2);
    expect(after.replica).toBe(before.replica); // in place: the same process
    await cli.waitForOutput("applied in place");

    cli.signal("SIGINT");
    const result = await cli.result;
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("Stopped watching");
  });

  it("--json prints one object per patch: applied, needs a full deploy, failed to load", async () => {
    const dir = await modelFolder({
      "model.mjs": version(1),
      "hangar.json": JSON.stringify({ name: "cli-watch-json" }),
    });
    const push = await runCli(["push", dir, "--development", "--json"], { env });
    expect(push.code, push.stderr).toBe(0);
    const deployment = JSON.parse(push.stdout);

    // The folder already matches the deployment: the first sync changes nothing.
    const cli = start(["watch", dir, "--json"]);
    await waitFor(() => jsonLines(cli).length >= 1, { what: "the first sync" });
    expect(jsonLines(cli)[0]).toMatchObject({
      applied: false,
      needsFullDeploy: false,
      error: null,
      deploymentId: deployment.id,
    });

    await writeFile(path.join(dir, "model.mjs"), version(2));
    await waitFor(() => jsonLines(cli).length >= 2, { what: "the patch of the edit" });
    expect(jsonLines(cli)[1]).toMatchObject({ applied: true, needsFullDeploy: false, error: null });
    await developmentAnswers(deployment.modelId, 2);

    await writeFile(path.join(dir, "model.mjs"), version(3, `throw new Error("broken weights");`));
    await waitFor(() => jsonLines(cli).length >= 3, { what: "the patch of the broken edit" });
    expect(jsonLines(cli)[2]).toMatchObject({
      applied: false,
      error: expect.stringContaining("broken weights"),
    });
    await developmentAnswers(deployment.modelId, 2); // the old code keeps serving

    await writeFile(
      path.join(dir, "hangar.json"),
      JSON.stringify({ name: "cli-watch-json", env: { MODE: "other" } }),
    );
    await waitFor(() => jsonLines(cli).length >= 4, { what: "the patch of hangar.json" });
    expect(jsonLines(cli)[3]).toMatchObject({ applied: false, needsFullDeploy: true });

    cli.signal("SIGINT");
    const result = await cli.result;
    expect(result.code, result.stderr).toBe(0);
    for (const line of jsonLines(cli)) expect(Object.keys(line)).toContain("applied");
  });

  it("sends a burst of changes as one patch, and ignores what .hangarignore lists", async () => {
    const dir = await modelFolder({
      "model.mjs": version(1),
      ".hangarignore": "scratch/\n*.tmp\n",
      "hangar.json": JSON.stringify({ name: "cli-watch-burst" }),
    });
    const cli = start(["watch", dir, "--json"]);
    await cli.waitForOutput("Watching", 60_000);
    const id = await modelId("cli-watch-burst");
    await developmentAnswers(id, 1);

    await writeFile(path.join(dir, "notes.tmp"), "ignored");
    await writeFile(path.join(dir, "model.mjs"), version(2));
    await writeFile(path.join(dir, "model.mjs"), version(3));
    await writeFile(path.join(dir, "model.mjs"), version(4));
    await developmentAnswers(id, 4);
    await waitFor(() => jsonLines(cli).length >= 1, { what: "a patch" });
    expect(jsonLines(cli)).toHaveLength(1);
    expect(jsonLines(cli)[0]).toMatchObject({ applied: true });

    // A change to an ignored file sends nothing.
    await writeFile(path.join(dir, "other.tmp"), "still ignored");
    await writeFile(path.join(dir, "more.tmp"), "and this");
    await new Promise((resolve) => setTimeout(resolve, 1_500)); // > the 300 ms quiet period, with margin
    expect(jsonLines(cli)).toHaveLength(1);

    cli.signal("SIGINT");
    expect((await cli.result).code).toBe(0);
  });

  it("push --watch pushes as development, then keeps watching (--json: JSON lines throughout)", async () => {
    const dir = await modelFolder({
      "model.mjs": version(1),
      "hangar.json": JSON.stringify({ name: "cli-push-watch" }),
    });
    const cli = start(["push", dir, "--watch", "--json"]);
    await cli.waitForOutput("Watching", 60_000);
    expect(jsonLines(cli)[0]).toMatchObject({ name: "development", kind: "DEVELOPMENT", status: "ACTIVE" });
    const id = await modelId("cli-push-watch");
    await developmentAnswers(id, 1);
    await writeFile(path.join(dir, "model.mjs"), version(2));
    await developmentAnswers(id, 2);
    await waitFor(() => jsonLines(cli).length >= 2, { what: "the patch line" });
    expect(jsonLines(cli)[1]).toMatchObject({ applied: true, deploymentId: jsonLines(cli)[0]?.id });
    cli.signal("SIGINT");
    expect((await cli.result).code).toBe(0);
  });

  it("refuses a folder that does not exist (exit 2)", async () => {
    const result = await runCli(["watch", "/nonexistent/model"], { env });
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/no such folder/);
  });
});
