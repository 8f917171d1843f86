import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli, runCliJson } from "../support/cli.ts";
import { gql, modelFolder, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

// biome-ignore lint/suspicious/noExplicitAny: --json output is inspected loosely.
type Json = any;

let hangar: TestHangar;
let env: Record<string, string>;
let scoped: { id: string; name: string };
let other: { id: string; name: string };

const SECRET = /^hk_[A-Za-z0-9_-]{32,}$/;
const API_KEY_FIELDS = [
  "createdAt",
  "environments",
  "expiresAt",
  "id",
  "lastUsedAt",
  "modelIds",
  "name",
  "prefix",
  "revokedAt",
  "role",
];
const FORBIDDEN_HINT = "hint: use a key whose role and scope (models, environments) allow it";

async function createModel(name: string): Promise<{ id: string; name: string }> {
  const data = await gql(
    hangar,
    `mutation($name: String!) { createModel(input: { name: $name }) { ... on Model { id name } } }`,
    { name },
  );
  return data.createModel;
}

/** `hangar keys create ... --json` with the admin key: the CreatedApiKey. */
function createKey(name: string, ...flags: string[]): Promise<Json> {
  return runCliJson(["keys", "create", name, ...flags], { env });
}

beforeAll(async () => {
  hangar = await startHangar();
  env = cliEnv(hangar);
  [scoped, other] = await Promise.all([createModel("scoped"), createModel("other")]);
});

afterAll(async () => {
  await hangar?.dispose();
});

describe("hangar keys create", () => {
  it("--json: the CreatedApiKey of each role, whose secret works", async () => {
    const roles = ["ADMIN", "DEPLOYER", "VIEWER", "INFERENCE"];
    const created = await Promise.all(
      roles.map((role) => createKey(`every-${role.toLowerCase()}`, "--role", role)),
    );
    for (const [i, result] of created.entries()) {
      expect(Object.keys(result).sort()).toEqual(["apiKey", "secret"]);
      expect(Object.keys(result.apiKey).sort()).toEqual(API_KEY_FIELDS);
      expect(result.secret).toMatch(SECRET);
      expect(result.apiKey).toMatchObject({
        name: `every-${roles[i]!.toLowerCase()}`,
        role: roles[i],
        modelIds: null,
        environments: null,
        prefix: result.secret.slice(0, 8),
        expiresAt: null,
        lastUsedAt: null,
        revokedAt: null,
      });
    }
    // Each secret is a key the server takes, as the role it was created with: `login` names it.
    const configDir = await mkdtemp(path.join(tmpdir(), "hangar-cli-keys-"));
    const logins = await Promise.all(
      created.map((result) =>
        runCliJson(["login", "--url", hangar.url, "--api-key", result.secret], {
          env: { HANGAR_CONFIG: path.join(configDir, `${result.apiKey.name}.json`) },
        }),
      ),
    );
    for (const [i, login] of logins.entries()) {
      expect(login.apiKey).toEqual({ name: created[i].apiKey.name, role: roles[i] });
    }
  });

  it("prints the secret alone on stdout, once, with a warning that it cannot be shown again", async () => {
    const result = await runCli(
      [
        "keys",
        "create",
        "human-ci",
        "--role",
        "deployer",
        "--model",
        "scoped",
        "--environment",
        "staging,qa",
      ],
      { env },
    );
    expect(result.stderr).not.toMatch(/^hangar:/m);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^hk_[A-Za-z0-9_-]{32,}\n$/);
    expect(result.stderr).toContain("Created API key 'human-ci'");
    expect(result.stderr).toContain("DEPLOYER, models scoped, environments staging,qa, never expires");
    expect(result.stderr).toContain("it is shown only this once and cannot be shown again");
    // The listing shows the key, never its secret.
    const secret = result.stdout.trim();
    const list = await runCli(["keys", "list"], { env });
    expect(list.code).toBe(0);
    expect(list.stdout).toMatch(/^human-ci .* DEPLOYER +scoped +staging,qa /m);
    expect(list.stdout).not.toContain(secret);
    expect(list.stdout).toContain(secret.slice(0, 8));
    expect((await runCli(["keys", "list", "--json"], { env })).stdout).not.toContain(secret);
  });

  it("models by name or ID (repeated or comma-separated), environments, and an expiry", async () => {
    const before = Date.now();
    const result = await createKey(
      "scoped-ci",
      "--role",
      "DEPLOYER",
      "--model",
      `scoped,${other.id}`,
      "-m",
      "scoped",
      "--environment",
      "staging",
      "--expires",
      "30d",
    );
    expect([...result.apiKey.modelIds].sort()).toEqual([scoped.id, other.id].sort());
    expect(result.apiKey.environments).toEqual(["staging"]);
    const expires = new Date(result.apiKey.expiresAt).getTime();
    expect(expires).toBeGreaterThanOrEqual(before + 30 * 86_400_000 - 1000);
    expect(expires).toBeLessThanOrEqual(Date.now() + 30 * 86_400_000 + 1000);

    const dated = await createKey("dated", "--role", "VIEWER", "--expires", "2099-01-31");
    expect(dated.apiKey.expiresAt).toBe("2099-01-31T00:00:00.000Z");

    // A model the server does not know is refused before anything is created.
    const unknown = await runCli(
      ["keys", "create", "nothing", "--role", "VIEWER", "--model", "no-such-model"],
      {
        env,
      },
    );
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("no model named or with ID 'no-such-model'");
    const names = (await runCliJson(["keys", "list"], { env })).map((k: Json) => k.name);
    expect(names).not.toContain("nothing");
  });

  it("a taken name: exit 1 with the server's error", async () => {
    await createKey("taken", "--role", "VIEWER");
    const result = await runCli(["keys", "create", "taken", "--role", "VIEWER"], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/\[NAME_TAKEN\]\n {2}hint: choose another name/);
    expect(result.stdout).toBe("");
  });

  it("usage errors exit 2: missing or bad --role, bad --expires, scope on an ADMIN key", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["keys", "create", "u"], /required option '--role <role>' not specified/],
      [["keys", "create", "u", "--role", "ROOT"], /Allowed choices are ADMIN, DEPLOYER, VIEWER, INFERENCE/],
      [
        ["keys", "create", "u", "--role", "VIEWER", "--expires", "soon"],
        /'--expires <when>' argument 'soon'/,
      ],
      [["keys", "create", "u", "--role", "VIEWER", "--expires", "2020-01-01"], /is not in the future/],
      [["keys", "create", "u", "--role", "VIEWER", "--expires", "2099-02-30"], /ISO date such as/],
      [["keys", "create", "u", "--role", "ADMIN", "--model", "scoped"], /ADMIN keys may do everything/],
      [["keys", "create", "u", "--role", "VIEWER", "--environment", "Not Valid"], /--environment: invalid/],
      [["keys", "create", "u", "--role", "VIEWER", "--model", "a,,b"], /empty name/],
      [["keys", "create", "--role", "VIEWER"], /missing required argument 'name'/],
    ];
    const results = await Promise.all(cases.map(([args]) => runCli(args, { env })));
    for (const [i, result] of results.entries()) {
      expect(result.code, cases[i]![0].join(" ")).toBe(2);
      expect(result.stderr, cases[i]![0].join(" ")).toMatch(cases[i]![1]);
    }
    const names = (await runCliJson(["keys", "list"], { env })).map((k: Json) => k.name);
    expect(names).not.toContain("u");
  });
});

describe("hangar keys list", () => {
  it("a table with every column, model names for the scoped keys", async () => {
    await createKey("listed-scoped", "--role", "VIEWER", "--model", "scoped,other", "--expires", "12h");
    const result = await runCli(["keys", "list"], { env });
    expect(result.code).toBe(0);
    const [header, ...rows] = result.stdout.trimEnd().split("\n");
    expect(header!.split(/ {2,}/)).toEqual([
      "NAME",
      "ID",
      "ROLE",
      "MODELS",
      "ENVIRONMENTS",
      "PREFIX",
      "CREATED",
      "EXPIRES",
      "LAST USED",
      "REVOKED",
    ]);
    const row = (name: string) => rows.find((line) => line.startsWith(`${name} `))?.split(/ {2,}/);
    const admin = row("admin")!;
    expect(admin[2]).toBe("ADMIN");
    expect(admin.slice(3, 5)).toEqual(["all", "all"]);
    expect(admin[5]).toBe(hangar.key.slice(0, 8));
    expect(admin[7]).toBe("-");
    expect(admin[admin.length - 1]).toBe("-");
    const listed = row("listed-scoped")!;
    expect(listed[2]).toBe("VIEWER");
    expect(listed[3]!.split(",").sort()).toEqual(["other", "scoped"]);
    expect(listed[4]).toBe("all");
    expect(listed[7]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
  });

  it("--json: every key as an ApiKey object, the admin key among them, no secret", async () => {
    const listed = await runCliJson(["--json", "keys", "list"], { env });
    expect(Array.isArray(listed)).toBe(true);
    for (const key of listed) expect(Object.keys(key).sort()).toEqual(API_KEY_FIELDS);
    expect(listed.find((k: Json) => k.name === "admin")).toMatchObject({
      role: "ADMIN",
      modelIds: null,
      environments: null,
      prefix: hangar.key.slice(0, 8),
      revokedAt: null,
    });
    expect(JSON.stringify(listed)).not.toContain(hangar.key);
  });

  it("follows the pages to the end", { timeout: 180_000 }, async () => {
    // More keys than the CLI asks for in one page (100).
    const names = Array.from({ length: 105 }, (_, i) => `paged-${String(i).padStart(3, "0")}`);
    for (let start = 0; start < names.length; start += 15) {
      await Promise.all(
        names
          .slice(start, start + 15)
          .map((name) =>
            gql(
              hangar,
              `mutation($name: String!) { createApiKey(input: { name: $name, role: VIEWER }) { __typename } }`,
              { name },
            ),
          ),
      );
    }
    const listed: Json[] = await runCliJson(["keys", "list"], { env });
    const listedNames = listed.map((k) => k.name);
    expect(listedNames.filter((name) => name.startsWith("paged-")).sort()).toEqual(names);
    expect(new Set(listed.map((k) => k.id)).size).toBe(listed.length);
  });
});

describe("hangar keys revoke", () => {
  it("by name and by ID: the key is refused from then on and listed as revoked", async () => {
    const [byName, byId] = await Promise.all([
      createKey("revoke-by-name", "--role", "DEPLOYER"),
      createKey("revoke-by-id", "--role", "DEPLOYER"),
    ]);
    const models = ["models", "--json", "--api-key", byName.secret];
    expect((await runCli(models, { env })).code).toBe(0);

    const human = await runCli(["keys", "revoke", "revoke-by-name"], { env });
    expect(human.stderr).toBe("");
    expect(human.code).toBe(0);
    expect(human.stdout).toBe(
      `Revoked API key 'revoke-by-name' (${byName.apiKey.id}): it is refused from now on\n`,
    );
    const json = await runCliJson(["keys", "revoke", byId.apiKey.id], { env });
    expect(Object.keys(json).sort()).toEqual(API_KEY_FIELDS);
    expect(json).toMatchObject({ id: byId.apiKey.id, name: "revoke-by-id", role: "DEPLOYER" });
    expect(new Date(json.revokedAt).getTime()).not.toBeNaN();

    for (const secret of [byName.secret, byId.secret]) {
      await waitFor(
        async () => {
          const refused = await runCli(["models", "--api-key", secret], { env });
          return refused.code === 1 && refused.stderr.includes("refused the API key");
        },
        { timeoutMs: 30_000, what: "the revoked key to be refused" },
      );
    }
    const listed: Json[] = await runCliJson(["keys", "list"], { env });
    for (const id of [byName.apiKey.id, byId.apiKey.id]) {
      expect(listed.find((k) => k.id === id)?.revokedAt).toBeTruthy();
    }

    // Revoked, the name is free again; by name, revoke finds the live key of that name.
    const again = await runCli(["keys", "revoke", "revoke-by-name"], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`the API key 'revoke-by-name' (${byName.apiKey.id}) was already revoked`);
    const reused = await createKey("revoke-by-name", "--role", "VIEWER");
    const second = await runCliJson(["keys", "revoke", "revoke-by-name"], { env });
    expect(second.id).toBe(reused.apiKey.id);
  });

  it("no such key: exit 1, pointing at `hangar keys list`", async () => {
    const result = await runCli(["keys", "revoke", "no-such-key"], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "no API key named or with ID 'no-such-key' (`hangar keys list` lists them)",
    );
  });

  it("the bootstrap admin key cannot be revoked, and goes on working", async () => {
    const result = await runCli(["keys", "revoke", "admin"], { env });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^hangar: .*\[INVALID_STATE\]\n {2}hint: the bootstrap key `admin`/);
    expect(result.stdout).toBe("");
    expect((await runCli(["models", "--json"], { env })).code).toBe(0);
  });
});

describe("permissions as the CLI reports them", () => {
  it("a DEPLOYER key lists models but is refused `keys`, with a message naming it (exit 1)", async () => {
    const deployer = await createKey("ci", "--role", "DEPLOYER");
    const models = await runCli(["models", "--json", "--api-key", deployer.secret], { env });
    expect(models.stderr).toBe("");
    expect(models.code).toBe(0);
    const asAdmin = await runCliJson(["models"], { env });
    expect(JSON.parse(models.stdout)).toEqual(asAdmin);
    expect(asAdmin.map((m: Json) => m.name)).toEqual(expect.arrayContaining(["other", "scoped"]));

    const results = await Promise.all([
      runCli(["keys", "list", "--api-key", deployer.secret], { env }),
      runCli(["--api-key", deployer.secret, "keys", "create", "x", "--role", "VIEWER"], { env }),
      runCli(["keys", "revoke", "admin", "--api-key", deployer.secret, "--json"], { env }),
    ]);
    for (const result of results) {
      expect(result.code).toBe(1);
      expect(result.stdout).toBe("");
      expect(result.stderr).toMatch(
        /^hangar: the API key 'ci' \(DEPLOYER\) may not do this: .+ \[FORBIDDEN\]\n/,
      );
      expect(result.stderr).toContain(FORBIDDEN_HINT);
    }
  });

  it("a key limited to some models sees only those", async () => {
    const limited = await createKey("limited", "--role", "VIEWER", "--model", "scoped");
    const listed = await runCliJson(["--api-key", limited.secret, "models"], { env });
    expect(listed.map((m: Json) => m.name)).toEqual(["scoped"]);
  });

  it("an INFERENCE key: no model listing, predict by ID, and the gateway's 403 named like FORBIDDEN", async () => {
    const folder = await modelFolder({
      "model.mjs": "export default class M { predict(input) { return { echoed: input }; } }",
    });
    const development = await pushFolder(hangar, "served", folder, { development: true });
    await waitForStatus(hangar, development.id, "ACTIVE");
    const [inference, staging] = await Promise.all([
      createKey("inference", "--role", "INFERENCE"),
      createKey("inference-staging", "--role", "INFERENCE", "--environment", "staging"),
    ]);
    const predict = (key: string, model: string) =>
      runCli(["predict", model, "--development", "--data", '{"n": 1}', "--api-key", key], { env });
    const [listing, byId, byName, refused] = await Promise.all([
      runCli(["models", "--api-key", inference.secret], { env }),
      predict(inference.secret, development.model.id),
      predict(inference.secret, "served"),
      predict(staging.secret, development.model.id),
    ]);
    expect(listing.code).toBe(1);
    expect(listing.stderr).toMatch(
      /^hangar: the API key 'inference' \(INFERENCE\) may not do this: .+ \[FORBIDDEN\]/,
    );

    expect(byId.stderr).toContain(`served by deployment ${development.id}`);
    expect(byId.code).toBe(0);
    expect(JSON.parse(byId.stdout)).toEqual({ echoed: { n: 1 } });

    expect(byName.code).toBe(1);
    expect(byName.stderr).toMatch(
      /\[model_does_not_exist\]\n {2}hint: this key may not look models up by name/,
    );

    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(
      /^hangar: the API key 'inference-staging' \(INFERENCE\) may not do this: .* \[forbidden\]\n/,
    );
    expect(refused.stderr).toContain(FORBIDDEN_HINT);
  });
});
