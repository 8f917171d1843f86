import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorForCode, GATEWAY_ERROR_CODES, GRAPHQL_ERROR_CODES } from "../../src/cli/errors.ts";
import { ERROR_CODES } from "../../src/domain/error-codes.ts";
import { cliEnv, runCli } from "../support/cli.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { refusedUrl } from "../support/refused.ts";

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar();
});

afterAll(async () => {
  await hangar?.dispose();
});

/** One invocation of each client command that would reach the server. */
const COMMANDS = [
  ["models"],
  ["deployments", "m"],
  ["environments", "m"],
  ["activate", "dep_x"],
  ["deactivate", "dep_x"],
  ["delete", "dep_x", "--yes"],
  ["logs", "dep_x"],
  ["logs", "dep_x", "-f"],
  ["predict", "m", "--data", "{}"],
  ["cancel", "production", "--model", "m"],
  ["pause", "production", "--model", "m"],
  ["resume", "production", "--model", "m"],
  ["roll-forward", "production", "--model", "m"],
  ["keys", "list"],
  ["keys", "create", "k", "--role", "VIEWER"],
  ["keys", "revoke", "k"],
];

describe("failures every command reports the same way", () => {
  it("a wrong key: exit 1, saying the key was refused", { timeout: 180_000 }, async () => {
    const results = await Promise.all(
      COMMANDS.map((args) => runCli([...args, "--json"], { env: cliEnv(hangar, "hk_wrong") })),
    );
    for (const [i, result] of results.entries()) {
      expect(result.code, COMMANDS[i]!.join(" ")).toBe(1);
      expect(result.stderr).toContain(`hangar: the server at ${hangar.url} refused the API key`);
      expect(result.stdout).toBe("");
    }
  });

  it("an unreachable server: exit 1, saying it cannot be reached", { timeout: 180_000 }, async () => {
    const url = await refusedUrl();
    const results = await Promise.all(
      COMMANDS.map((args) => runCli(args, { env: { HANGAR_URL: url, HANGAR_API_KEY: "hk_x" } })),
    );
    for (const [i, result] of results.entries()) {
      expect(result.code, COMMANDS[i]!.join(" ")).toBe(1);
      expect(result.stderr).toContain(`hangar: cannot reach Hangar at ${url}: connection refused`);
    }
  });

  it("a URL that is not Hangar: exit 1", async () => {
    const result = await runCli(["models"], {
      env: { HANGAR_URL: `${hangar.url}/healthz`, HANGAR_API_KEY: "k" },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/did not answer like a Hangar server \(HTTP 404: .*\): check --url/);
  });

  it("usage errors exit 2 with the reason", { timeout: 180_000 }, async () => {
    const env = cliEnv(hangar);
    const cases: string[][] = [
      [],
      ["no-such-command"],
      ["models", "--no-such-flag"],
      ["deployments"],
      ["environments"],
      ["activate"],
      ["logs"],
      ["logs", "dep_x", "--tail", "-3"],
      ["predict"],
      ["cancel", "production"],
      ["models", "--url", "ftp://example.com"],
      ["serve", "--port", "not-a-port"],
      ["keys"],
      ["keys", "create"],
      ["keys", "create", "k"],
      ["keys", "create", "k", "--role", "ROOT"],
      ["keys", "create", "k", "--role", "VIEWER", "--expires", "soon"],
      ["keys", "revoke"],
      ["--json", "serve"],
      ["--no-such-flag", "models"],
    ];
    const results = await Promise.all(cases.map((args) => runCli(args, { env })));
    for (const [i, result] of results.entries()) {
      expect(result.code, cases[i]!.join(" ")).toBe(2);
      expect(result.stderr.length, cases[i]!.join(" ")).toBeGreaterThan(0);
    }
    const unconfigured = await runCli(["models"]);
    expect(unconfigured.code).toBe(2);
    expect(unconfigured.stderr).toMatch(/run `hangar login --url URL --api-key KEY`/);
  });

  it("--help explains every command and exits 0", async () => {
    const help = await runCli(["--help"]);
    expect(help.code).toBe(0);
    for (const command of [
      "login",
      "models",
      "deployments",
      "environments",
      "activate",
      "deactivate",
      "delete",
      "keys",
    ]) {
      expect(help.stdout).toContain(command);
    }
    expect(help.stdout).toMatch(/Exit codes: 0 success, 1 failed operation/);
    // The common options are the program's too, and the help says which wins.
    expect(help.stdout).toMatch(/Options:\n {2}--url <url>[\s\S]*--api-key <key>[\s\S]*--json/);
    expect(help.stdout).toMatch(/given in both places, the one after the command wins/);
    const predict = await runCli(["predict", "--help"]);
    expect(predict.code).toBe(0);
    expect(predict.stdout).toMatch(/--environment <name>/);
    expect(predict.stdout).toMatch(/Examples:/);
  });
});

describe("errorForCode", () => {
  const CODES = [...ERROR_CODES, ...GATEWAY_ERROR_CODES, ...GRAPHQL_ERROR_CODES];

  it("gives every error code of the API a hint and exit code 1", () => {
    for (const code of CODES) {
      const error = errorForCode(code, "what the server said");
      expect(error.exitCode).toBe(1);
      expect(error.message).toMatch(new RegExp(`^what the server said \\[${code}\\]\\n {2}hint: \\S`));
    }
    expect(errorForCode("SOMETHING_NEW", "x").message).toBe("x [SOMETHING_NEW]");
  });
});
