import { mkdtemp, readFile, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli } from "../support/cli.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { refusedUrl } from "../support/refused.ts";

let hangar: TestHangar;
let other: TestHangar;

beforeAll(async () => {
  [hangar, other] = await Promise.all([startHangar(), startHangar()]);
});

afterAll(async () => {
  await Promise.all([hangar?.dispose(), other?.dispose()]);
});

async function freshConfig(): Promise<string> {
  return path.join(await mkdtemp(path.join(tmpdir(), "hangar-cli-config-")), "nested", "config.json");
}

/** A command that needs the server, answering which server it reached through the model list. */
const MODELS = ["models", "--json"];

describe("hangar login", () => {
  it("checks the key, writes the config owner-only, and later commands need no flags", async () => {
    const config = await freshConfig();
    const env = { HANGAR_CONFIG: config };
    const login = await runCli(["login", "--url", `${hangar.url}/`, "--api-key", hangar.key, "--json"], {
      env,
    });
    expect(login.stderr).toBe("");
    expect(login.code).toBe(0);
    expect(JSON.parse(login.stdout)).toEqual({
      url: hangar.url,
      configPath: config,
      apiKey: { name: "admin", role: "ADMIN" },
    });
    expect((await stat(config)).mode & 0o777).toBe(0o600);
    expect((await stat(path.dirname(config))).mode & 0o777).toBe(0o700);
    expect(JSON.parse(await readFile(config, "utf8"))).toEqual({ url: hangar.url, apiKey: hangar.key });

    const human = await runCli(["login", "--url", hangar.url, "--api-key", hangar.key], { env });
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`Logged in to ${hangar.url} with the API key 'admin' (ADMIN)`);
    expect(human.stdout).toContain(config);
  });

  it("refuses a wrong key without saving it", async () => {
    const config = await freshConfig();
    const result = await runCli(["login", "--url", hangar.url, "--api-key", "hk_wrong"], {
      env: { HANGAR_CONFIG: config },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/refused the API key/);
    await expect(stat(config)).rejects.toThrow();
  });

  it("reports an unreachable server with exit 1", async () => {
    const result = await runCli(["login", "--url", await refusedUrl(), "--api-key", "hk_x"], {
      env: { HANGAR_CONFIG: await freshConfig() },
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/cannot reach Hangar at http:\/\/127\.0\.0\.1:\d+: connection refused/);
  });

  it("usage errors exit 2", async () => {
    const env = { HANGAR_CONFIG: await freshConfig() };
    expect((await runCli(["login", "--url", hangar.url], { env })).code).toBe(2);
    const badUrl = await runCli(["login", "--url", "not a url", "--api-key", "k"], { env });
    expect(badUrl.code).toBe(2);
    expect(badUrl.stderr).toMatch(/--url is not a URL/);
    expect((await runCli(["login", "--bogus"], { env })).code).toBe(2);
    expect((await runCli(["no-such-command"], { env })).code).toBe(2);
  });
});

describe("where the server and key come from", () => {
  it("config file < environment < flags", async () => {
    const config = await freshConfig();
    const env = { HANGAR_CONFIG: config };
    expect((await runCli(["login", "--url", hangar.url, "--api-key", hangar.key], { env })).code).toBe(0);
    // Without anything configured: a usage error naming `hangar login`.
    const none = await runCli(MODELS, { env: { HANGAR_CONFIG: await freshConfig() } });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/hangar login/);
    // The file alone works.
    const fromFile = await runCli(MODELS, { env });
    expect(fromFile.code).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toEqual([]);
    // The environment overrides the file: the other server's key is refused by the first...
    const envKeyOnly = await runCli(MODELS, { env: { ...env, HANGAR_API_KEY: other.key } });
    expect(envKeyOnly.code).toBe(1);
    expect(envKeyOnly.stderr).toMatch(/refused the API key/);
    // ... and works with the other server's URL.
    expect((await runCli(MODELS, { env: { ...env, ...cliEnv(other) } })).code).toBe(0);
    // Flags override the environment.
    const flags = await runCli([...MODELS, "--url", hangar.url, "--api-key", hangar.key], {
      env: { ...env, ...cliEnv(other, "hk_wrong") },
    });
    expect(flags.code).toBe(0);
    const wrongFlag = await runCli([...MODELS, "--api-key", "hk_wrong"], { env });
    expect(wrongFlag.code).toBe(1);
  });

  it("--url, --api-key and --json before the command; the one after it wins", async () => {
    const env = { HANGAR_CONFIG: await freshConfig() };
    const results = await Promise.all([
      runCli(["--url", hangar.url, "--api-key", hangar.key, "--json", "models"], { env }),
      runCli(["--json", "--api-key", hangar.key, "deployments", "m", "--url", hangar.url], { env }),
      // Given twice, the value after the command is used: first a wrong key after a right one...
      runCli(["--url", hangar.url, "--api-key", hangar.key, "models", "--api-key", "hk_wrong"], { env }),
      // ... then a right key after a wrong one, and a server after another.
      runCli(
        ["--url", other.url, "--api-key", "hk_wrong", "models", "--url", hangar.url, "--api-key", hangar.key],
        {
          env,
        },
      ),
      runCli(["--url", hangar.url, "--api-key", hangar.key, "login"], {
        env: { HANGAR_CONFIG: await freshConfig() },
      }),
    ]);
    const [before, mixed, wrongAfter, rightAfter, login] = results;
    expect(before!.stderr).toBe("");
    expect(before!.code).toBe(0);
    expect(JSON.parse(before!.stdout)).toEqual([]);
    expect(mixed!.code).toBe(1);
    expect(mixed!.stderr).toMatch(/no model named or with ID 'm'/);
    expect(wrongAfter!.code).toBe(1);
    expect(wrongAfter!.stderr).toContain(`hangar: the server at ${hangar.url} refused the API key`);
    expect(rightAfter!.code).toBe(0);
    expect(rightAfter!.stderr).toContain("No models yet");
    expect(login!.code).toBe(0);
    expect(login!.stdout).toContain(`Logged in to ${hangar.url} with the API key 'admin' (ADMIN)`);
  });
});
