import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliEnv, runCli, runCliJson } from "../support/cli.ts";
import { gql } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { createKey } from "../support/keys.ts";
import { createEnvironment } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";
import { type Receiver, startReceiver, verifySignature } from "../support/webhook-receiver.ts";

let hangar: TestHangar;
let env: Record<string, string>;
let receiver: Receiver;
let modelId: string;

const SECRET = /^whsec_[A-Za-z0-9_-]{43}$/;

beforeAll(async () => {
  receiver = await startReceiver();
  hangar = await startHangar();
  env = cliEnv(hangar);
  const data = await gql(
    hangar,
    `mutation { createModel(input: { name: "cli-hooked" }) { ... on Model { id } } }`,
  );
  modelId = data.createModel.id;
});

afterAll(async () => {
  await hangar?.dispose();
  await receiver?.close();
});

describe("hangar webhooks", () => {
  it("create prints the secret alone on stdout, once, and the webhook POSTs events signed with it", async () => {
    const result = await runCli(
      [
        "webhooks",
        "create",
        `${receiver.url}/cli`,
        "--model",
        "cli-hooked",
        "--events",
        "environment_created",
      ],
      { env },
    );
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^whsec_[A-Za-z0-9_-]{43}\n$/);
    expect(result.stderr).toMatch(
      new RegExp(
        `^Created webhook whk_\\S+ to ${receiver.url}/cli: model cli-hooked, events ENVIRONMENT_CREATED\\.`,
      ),
    );
    expect(result.stderr).toContain("Keep the signing secret now: it is shown only this once");
    const secret = result.stdout.trim();
    await createEnvironment(hangar, { modelId, name: "from-cli" });
    const [request] = await waitFor(() => (receiver.to("/cli").length > 0 ? receiver.to("/cli") : null), {
      what: "the webhook's POST",
    });
    if (!request) throw new Error("unreachable");
    verifySignature(request, secret);
    expect(request.json).toMatchObject({ type: "ENVIRONMENT_CREATED", modelId });
  });

  it("create --json, list (table and --json, never a secret) and delete", async () => {
    const created = await runCliJson(["webhooks", "create", `${receiver.url}/json`], { env });
    expect(Object.keys(created).sort()).toEqual(["secret", "webhook"]);
    expect(created.secret).toMatch(SECRET);
    expect(created.webhook).toEqual({
      id: expect.stringMatching(/^whk_/),
      url: `${receiver.url}/json`,
      modelId: null,
      events: null,
      createdAt: expect.any(String),
    });
    const id = created.webhook.id;

    const table = await runCli(["webhooks", "list"], { env });
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+URL\s+MODEL\s+EVENTS\s+CREATED\s+LAST DELIVERY$/);
    const row = lines.find((line) => line.startsWith(id));
    expect(row).toMatch(
      new RegExp(
        `^${id}\\s+${receiver.url}/json\\s+all\\s+all\\s+\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\s+-$`,
      ),
    );
    // The first test's webhook, by its model's name, with its delivery.
    expect(lines.find((line) => line.includes("/cli "))).toMatch(
      /cli-hooked\s+ENVIRONMENT_CREATED\s+.*DELIVERED \(1 attempt\)$/,
    );
    expect(table.stdout).not.toContain(created.secret);

    const listed = await runCliJson(["webhooks", "list"], { env });
    expect(listed.map((w: { id: string }) => w.id)).toContain(id);
    expect(Object.keys(listed[0]).sort()).toEqual(["createdAt", "events", "id", "modelId", "url"]);
    expect(JSON.stringify(listed)).not.toContain("whsec_");

    const deleted = await runCli(["webhooks", "delete", id], { env });
    expect(deleted).toMatchObject({
      code: 0,
      stdout: `Deleted webhook ${id} (${receiver.url}/json): nothing more is sent to it\n`,
    });
    expect((await runCliJson(["webhooks", "list"], { env })).map((w: { id: string }) => w.id)).not.toContain(
      id,
    );
    const again = await runCli(["webhooks", "delete", id], { env });
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/no webhook with ID .* \[NOT_FOUND\]/);
  });

  it("refuses a bad URL (exit 1), an unknown event type (exit 2) and a key that may not (FORBIDDEN)", async () => {
    const bad = await runCli(["webhooks", "create", "ftp://example.com/x"], { env });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/http:\/\/ or https:\/\/.*\[INVALID_INPUT\]/);
    const unknown = await runCli(["webhooks", "create", "https://example.com/", "--events", "NOPE"], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("--events: 'NOPE' is not an event type");
    const viewer = await createKey(hangar, { name: "cli-hooks-viewer", role: "VIEWER" });
    const refused = await runCli(["webhooks", "list"], { env: cliEnv(hangar, viewer.secret) });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/the API key 'cli-hooks-viewer' \(VIEWER\) may not .*\[FORBIDDEN\]/);
  });
});
