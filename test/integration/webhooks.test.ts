// Webhooks (API.md section 11) against a real Hangar and real receivers on loopback: what arrives, in
// which order, signed how; retries; a receiver that never answers; input and permission refusals.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, gqlRaw, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { asKey, createKey } from "../support/keys.ts";
import { createEnvironment, finished, promoteTo } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";
import {
  CREATE_WEBHOOK,
  createWebhook,
  deliveriesOf,
  type Receiver,
  startReceiver,
  verifySignature,
} from "../support/webhook-receiver.ts";

/** A receiver's answer timeout short enough that a test sees it pass (HANGAR_WEBHOOK_TIMEOUT_MS). */
const TIMEOUT_MS = 3000;

let hangar: TestHangar;
let receiver: Receiver;

beforeAll(async () => {
  // /flaky answers 500 the first time, /hang never, everything else 200 at once.
  receiver = await startReceiver((path, n) => {
    if (path.startsWith("/flaky")) return n === 0 ? 500 : 200;
    if (path.startsWith("/hang")) return "hang";
    return 200;
  });
  hangar = await startHangar({ env: { HANGAR_WEBHOOK_TIMEOUT_MS: String(TIMEOUT_MS) } });
});

afterAll(async () => {
  await hangar?.dispose();
  await receiver?.close();
});

async function createModel(name: string): Promise<string> {
  const data = await gql(
    hangar,
    `mutation($name: String!) { createModel(input: { name: $name }) { ... on Model { id } } }`,
    { name },
  );
  return data.createModel.id;
}

async function modelEvents(modelId: string): Promise<Array<{ cursor: string; type: string }>> {
  const { model } = await gql(
    hangar,
    `query($id: ID!) { model(id: $id) { events(first: 500) { edges { node { cursor type } } } } }`,
    { id: modelId },
  );
  return model.events.edges.map((edge: { node: { cursor: string; type: string } }) => edge.node);
}

const BODY_FIELDS = [
  "actor",
  "at",
  "cursor",
  "deploymentId",
  "environmentId",
  "message",
  "modelId",
  "promotionId",
  "type",
].sort();

describe("webhooks", () => {
  it("delivers every event of a promotion, once, in order, signed, to a webhook created before it", async () => {
    const modelId = await createModel("hooked");
    const before = await modelEvents(modelId);
    const { id, secret } = await createWebhook(hangar, { url: `${receiver.url}/all`, modelId });
    // A webhook of another model, and one of other types only, get none of these.
    await createWebhook(hangar, {
      url: `${receiver.url}/other-model`,
      modelId: await createModel("unhooked"),
    });
    await createWebhook(hangar, { url: `${receiver.url}/deleted-only`, modelId, events: ["MODEL_DELETED"] });

    const dep = await pushFolder(
      hangar,
      "hooked",
      await modelFolder({ "model.mjs": "export default class M { predict(x) { return x } }" }),
    );
    await waitForStatus(hangar, dep.id, "ACTIVE", 60_000);
    const promotion = await promoteTo(hangar, dep.id);
    expect((await finished(hangar, promotion.id)).status).toBe("SUCCEEDED");

    // Every event committed after the webhook was created, in the model's order, and nothing else.
    const arrived = await waitFor(
      async () => {
        const expected = (await modelEvents(modelId)).slice(before.length);
        const got = receiver.to("/all");
        const done =
          expected.some((e) => e.type === "PROMOTION_FINISHED") &&
          got.length >= expected.length &&
          (await deliveriesOf(hangar, id)).every((d) => d.status === "DELIVERED");
        return done ? { expected, got } : null;
      },
      { what: "the promotion's events to arrive", timeoutMs: 30_000 },
    );
    const { expected, got } = arrived;
    expect(got.map((r) => [r.json.cursor, r.json.type])).toEqual(expected.map((e) => [e.cursor, e.type]));
    expect(got.map((r) => r.json.type)).toEqual(
      expect.arrayContaining([
        "DEPLOYMENT_CREATED",
        "DEPLOYMENT_STATUS_CHANGED",
        "PROMOTION_STARTED",
        "PROMOTION_FINISHED",
      ]),
    );
    for (const request of got) {
      verifySignature(request, secret);
      expect(Object.keys(request.json).sort()).toEqual(BODY_FIELDS);
      expect(request.headers["content-type"]).toBe("application/json");
      expect(request.headers["x-hangar-event"]).toBe(request.json.type);
      expect(request.headers["x-hangar-delivery"]).toMatch(/^dlv_[A-Za-z0-9_-]{16}$/);
      expect(request.json.modelId).toBe(modelId);
      expect(Date.parse(request.json.at)).not.toBeNaN();
    }
    const started = got.find((r) => r.json.type === "PROMOTION_STARTED")?.json;
    expect(started).toMatchObject({ promotionId: promotion.id, actor: "admin" });
    // One delivery per event, each with an ID of its own.
    expect(new Set(got.map((r) => r.headers["x-hangar-delivery"])).size).toBe(got.length);
    // The API lists them newest first, each delivered at the first attempt.
    const listed = await deliveriesOf(hangar, id);
    expect(listed.map((d) => d.eventCursor)).toEqual(expected.map((e) => e.cursor).reverse());
    expect(listed.map((d) => d.id)).toEqual(got.map((r) => r.headers["x-hangar-delivery"]).reverse());
    for (const delivery of listed) {
      expect(delivery).toMatchObject({ status: "DELIVERED", attempts: 1, lastStatus: 200, lastError: null });
      expect(delivery.deliveredAt).not.toBeNull();
    }
    expect(receiver.to("/other-model")).toEqual([]);
    expect(receiver.to("/deleted-only")).toEqual([]);
  });

  it("sends an event again, under the same delivery ID, after a 500, and records it DELIVERED at attempt 2", async () => {
    const modelId = await createModel("flaky");
    const { id, secret } = await createWebhook(hangar, {
      url: `${receiver.url}/flaky`,
      modelId,
      events: ["ENVIRONMENT_CREATED"],
    });
    await createEnvironment(hangar, { modelId, name: "staging" });
    const [first, second] = await waitFor(
      () => (receiver.to("/flaky").length >= 2 ? receiver.to("/flaky") : null),
      {
        what: "the event and its retry",
        timeoutMs: 15_000,
      },
    );
    if (!first || !second) throw new Error("unreachable");
    expect(second.headers["x-hangar-delivery"]).toBe(first.headers["x-hangar-delivery"]);
    expect(second.body).toBe(first.body);
    expect(first.json).toMatchObject({ type: "ENVIRONMENT_CREATED", modelId, actor: "admin" });
    verifySignature(first, secret);
    verifySignature(second, secret);
    // Retried after the first backoff step (1 s), not at once.
    expect(second.at - first.at).toBeGreaterThanOrEqual(900);
    const [delivery] = await waitFor(async () => {
      const list = await deliveriesOf(hangar, id);
      return list[0]?.status === "DELIVERED" ? list : null;
    });
    expect(delivery).toMatchObject({
      id: first.headers["x-hangar-delivery"],
      eventType: "ENVIRONMENT_CREATED",
      status: "DELIVERED",
      attempts: 2,
      lastStatus: 200,
      lastError: null,
    });
    expect(receiver.to("/flaky")).toHaveLength(2);
  });

  it("lets a receiver that never answers delay no other webhook and no request", async () => {
    const modelId = await createModel("slow-receiver");
    const dep = await pushFolder(
      hangar,
      "slow-receiver",
      await modelFolder({ "model.mjs": "export default class M { predict(x) { return { echo: x } } }" }),
    );
    await waitForStatus(hangar, dep.id, "ACTIVE", 60_000);
    const hung = await createWebhook(hangar, {
      url: `${receiver.url}/hang`,
      modelId,
      events: ["ENVIRONMENT_CREATED"],
    });
    await createWebhook(hangar, { url: `${receiver.url}/prompt`, modelId, events: ["ENVIRONMENT_CREATED"] });

    const asked = Date.now();
    await createEnvironment(hangar, { modelId, name: "first" });
    expect(Date.now() - asked).toBeLessThan(TIMEOUT_MS);
    const [held] = await waitFor(() => (receiver.to("/hang").length === 1 ? receiver.to("/hang") : null), {
      what: "the hung receiver to be called",
    });
    if (!held) throw new Error("unreachable");
    // While /hang holds its request (before that attempt could time out), /prompt gets its event and the
    // gateway answers: neither waited for the hung receiver.
    const prompt = await waitFor(() => receiver.to("/prompt")[0], { what: "/prompt", timeoutMs: TIMEOUT_MS });
    expect(prompt.at).toBeLessThan(held.at + TIMEOUT_MS);
    const answer = await predict(hangar, `/models/${dep.model.id}/deployments/${dep.id}/predict`, { n: 1 });
    expect(answer).toMatchObject({ status: 200, body: { echo: { n: 1 } } });
    expect(Date.now()).toBeLessThan(held.at + TIMEOUT_MS);
    expect(receiver.to("/hang").length).toBe(1);
    // The unanswered attempt fails at the timeout and is retried (the same delivery).
    const [delivery] = await waitFor(
      async () => {
        const list = await deliveriesOf(hangar, hung.id);
        return list[0] && list[0].attempts >= 1 ? list : null;
      },
      { what: "the hung attempt to time out", timeoutMs: 3 * TIMEOUT_MS },
    );
    expect(delivery).toMatchObject({
      status: "PENDING",
      lastStatus: null,
      lastError: `no answer within ${TIMEOUT_MS / 1000} s`,
    });
    await waitFor(() => receiver.to("/hang").length >= 2, { what: "the retry", timeoutMs: 3 * TIMEOUT_MS });
    expect(new Set(receiver.to("/hang").map((r) => r.headers["x-hangar-delivery"])).size).toBe(1);
  });

  it("refuses a URL that is not http(s), an empty or repeated event list and an unknown model", async () => {
    const modelId = await createModel("refusals");
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ url: "ftp://example.com/hook" }, "INVALID_INPUT", "url"],
      [{ url: "not a url" }, "INVALID_INPUT", "url"],
      [{ url: "javascript:alert(1)" }, "INVALID_INPUT", "url"],
      [{ url: `https://example.com/${"x".repeat(5000)}` }, "INVALID_INPUT", "url"],
      [{ url: "https://user:secret@example.com/" }, "INVALID_INPUT", "url"],
      [{ url: "https://example.com/", events: [] }, "INVALID_INPUT", "events"],
      [
        { url: "https://example.com/", events: ["MODEL_CREATED", "MODEL_CREATED"] },
        "INVALID_INPUT",
        "events",
      ],
      [{ url: "https://example.com/", modelId: "mdl_AAAAAAAAAAAAAAAA" }, "NOT_FOUND", "modelId"],
      [{ url: "https://example.com/", modelId: "nonsense" }, "NOT_FOUND", "modelId"],
    ];
    for (const [input, code, field] of cases) {
      const result = (await gql(hangar, CREATE_WEBHOOK, { input: { modelId, ...input } })).createWebhook;
      expect(result, JSON.stringify(input).slice(0, 80)).toMatchObject({
        __typename: "UserError",
        code,
        field,
      });
    }
    // A bad enum value is a GraphQL validation error, not a crash.
    const bad = await gqlRaw(hangar, CREATE_WEBHOOK, {
      input: { url: "https://example.com/", events: ["NOPE"] },
    });
    expect(bad.body.errors?.[0]?.message).toMatch(/NOPE/);
    // None of these was created.
    const { webhooks } = await gql(hangar, "{ webhooks { url modelId } }");
    expect(webhooks.filter((w: { modelId: string | null }) => w.modelId === modelId)).toEqual([]);
  });

  it("lets ADMIN and a DEPLOYER on its own models manage webhooks, and nobody else", async () => {
    const mine = await createModel("deployer-own");
    const theirs = await createModel("deployer-not-own");
    const deployer = asKey(
      hangar,
      (await createKey(hangar, { name: "hooks-deployer", role: "DEPLOYER", modelIds: [mine] })).secret,
    );
    const viewer = asKey(hangar, (await createKey(hangar, { name: "hooks-viewer", role: "VIEWER" })).secret);
    const global = await createWebhook(hangar, { url: `${receiver.url}/admin-global` });
    const adminOnTheirs = await createWebhook(hangar, {
      url: `${receiver.url}/admin-theirs`,
      modelId: theirs,
    });

    const forbidden = async (who: TestHangar, query: string, variables: Record<string, unknown> = {}) => {
      const { body } = await gqlRaw(who, query, variables);
      expect(body.errors?.[0]?.extensions?.code, JSON.stringify(body)).toBe("FORBIDDEN");
    };
    // A VIEWER neither lists nor creates nor deletes.
    await forbidden(viewer, "{ webhooks { id } }");
    await forbidden(viewer, CREATE_WEBHOOK, { input: { url: "https://example.com/", modelId: mine } });
    await forbidden(viewer, `mutation { deleteWebhook(id: "${global.id}") { __typename } }`);
    // A DEPLOYER limited to models may not make a webhook for every model ...
    await forbidden(deployer, CREATE_WEBHOOK, { input: { url: "https://example.com/" } });
    // ... nor see a model outside its list ...
    const outside = (
      await gql(deployer, CREATE_WEBHOOK, { input: { url: "https://example.com/", modelId: theirs } })
    ).createWebhook;
    expect(outside).toMatchObject({ __typename: "UserError", code: "NOT_FOUND", field: "modelId" });
    // ... but manages its own model's.
    const own = (
      await gql(deployer, CREATE_WEBHOOK, { input: { url: `${receiver.url}/deployer`, modelId: mine } })
    ).createWebhook;
    expect(own.__typename).toBe("CreatedWebhook");
    const { webhooks } = await gql(deployer, "{ webhooks { id modelId } }");
    expect(webhooks).toEqual([{ id: own.webhook.id, modelId: mine }]);
    for (const id of [global.id, adminOnTheirs.id]) {
      const answer = (
        await gql(
          deployer,
          `mutation($id: ID!) { deleteWebhook(id: $id) { __typename ... on UserError { code } } }`,
          { id },
        )
      ).deleteWebhook;
      expect(answer).toEqual({ __typename: "UserError", code: "NOT_FOUND" });
      expect((await gql(deployer, `query($id: ID!) { node(id: $id) { id } }`, { id })).node).toBeNull();
    }
    const deleted = (
      await gql(
        deployer,
        `mutation($id: ID!) { deleteWebhook(id: $id) { __typename ... on Webhook { id url } } }`,
        {
          id: own.webhook.id,
        },
      )
    ).deleteWebhook;
    expect(deleted).toEqual({ __typename: "Webhook", id: own.webhook.id, url: `${receiver.url}/deployer` });
    expect((await gql(deployer, "{ webhooks { id } }")).webhooks).toEqual([]);
    // Deleted: gone for everyone, admin too; a second delete finds nothing.
    const again = (
      await gql(
        hangar,
        `mutation($id: ID!) { deleteWebhook(id: $id) { __typename ... on UserError { code } } }`,
        { id: own.webhook.id },
      )
    ).deleteWebhook;
    expect(again).toEqual({ __typename: "UserError", code: "NOT_FOUND" });
    // The admin's listing holds the global one and the one on the other model; no secret anywhere in it.
    const all = await gqlRaw(hangar, "{ webhooks { id url modelId events createdAt } }");
    const ids = all.body.data?.webhooks.map((w: { id: string }) => w.id);
    expect(ids).toEqual(expect.arrayContaining([global.id, adminOnTheirs.id]));
    expect(ids).not.toContain(own.webhook.id);
    expect(JSON.stringify(all.body)).not.toContain(global.secret);
    expect(hangar.output()).not.toContain(global.secret);
  });

  // Last: it restarts the server.
  it("loses nothing when the process is killed mid-delivery: the restarted one sends it again", async () => {
    const held = await startReceiver((_path, n) => (n === 0 ? "hang" : 200));
    try {
      const modelId = await createModel("killed-here");
      const { id, secret } = await createWebhook(hangar, {
        url: `${held.url}/restart`,
        modelId,
        events: ["ENVIRONMENT_CREATED"],
      });
      await createEnvironment(hangar, { modelId, name: "in-flight" });
      const [first] = await waitFor(() => (held.received.length === 1 ? held.received : null), {
        what: "the delivery to be in flight",
      });
      await hangar.kill();
      hangar = await hangar.restart();
      const [, second] = await waitFor(() => (held.received.length >= 2 ? held.received : null), {
        what: "the restarted process to send it again",
        timeoutMs: 30_000,
      });
      if (!first || !second) throw new Error("unreachable");
      expect(second.headers["x-hangar-delivery"]).toBe(first.headers["x-hangar-delivery"]);
      verifySignature(second, secret);
      const [delivery] = await waitFor(async () => {
        const list = await deliveriesOf(hangar, id);
        return list[0]?.status === "DELIVERED" ? list : null;
      });
      expect(delivery).toMatchObject({ attempts: 1, lastStatus: 200 });
    } finally {
      await held.close();
    }
  });
});
