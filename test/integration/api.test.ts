import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { gql, gqlRaw, push, subscribe, wsClient } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";

let hangar: TestHangar;

beforeAll(async () => {
  hangar = await startHangar();
});

afterAll(async () => {
  await hangar?.dispose();
});

const CREATE = `mutation($name: String!) {
  createModel(input: { name: $name }) {
    __typename
    ... on Model { id name productionEnvironment { name isProduction } environments { name } }
    ... on UserError { code message field }
  }
}`;

const DELETE = `mutation($id: ID!) {
  deleteModel(id: $id) { __typename ... on Model { id deletedAt } ... on UserError { code message field } }
}`;

describe("auth", () => {
  it("answers 401 without a key or with a wrong one, on GraphQL and the gateway", async () => {
    for (const authorization of [undefined, "Bearer wrong", "Basic abc"]) {
      const headers: Record<string, string> = { "content-type": "application/json" };
      if (authorization) headers.authorization = authorization;
      const graphql = await fetch(`${hangar.url}/graphql`, {
        method: "POST",
        headers,
        body: JSON.stringify({ query: "{ models { edges { cursor } } }" }),
      });
      expect(graphql.status).toBe(401);
      const gateway = await fetch(`${hangar.url}/models/mdl_x/predict`, {
        method: "POST",
        headers,
        body: "{}",
      });
      expect(gateway.status).toBe(401);
      expect(await gateway.json()).toMatchObject({ error_code: "unauthorized" });
    }
  });

  it("closes a WebSocket without a valid key in connection_init with 4403", async () => {
    const socket = new WebSocket(`${hangar.url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
    await new Promise((resolve) => socket.once("open", resolve));
    socket.send(JSON.stringify({ type: "connection_init", payload: { authorization: "Bearer nope" } }));
    const code = await new Promise<number>((resolve) => socket.once("close", (c) => resolve(c)));
    expect(code).toBe(4403);
  });

  it("refuses a multipart POST without graphql-require-preflight with 403", async () => {
    const { status } = await push(hangar, { modelName: "csrf" }, Buffer.from("x"), {});
    expect(status).toBe(403);
    const models = await gql(hangar, `{ model(name: "csrf") { id } }`);
    expect(models.model).toBeNull();
  });

  it("sends a browser that is not signed in from GraphiQL to /sign-in, with no key in the answer", async () => {
    const page = await fetch(`${hangar.url.replace("127.0.0.1", "localhost")}/graphql`, {
      headers: { accept: "text/html" },
      redirect: "manual",
    });
    expect(page.status).toBe(303);
    expect(page.headers.get("location")).toBe("/sign-in");
    expect(await page.text()).not.toContain(hangar.key);
  });
});

describe("models", () => {
  it("creates a model with its production environment", async () => {
    const data = await gql(hangar, CREATE, { name: "iris" });
    expect(data.createModel).toMatchObject({
      __typename: "Model",
      name: "iris",
      productionEnvironment: { name: "production", isProduction: true },
      environments: [{ name: "production" }],
    });
  });

  it("refuses invalid and duplicate names with INVALID_INPUT and NAME_TAKEN", async () => {
    for (const name of ["Iris", "-iris", "", "a".repeat(64), "iris space", "iris/x"]) {
      const data = await gql(hangar, CREATE, { name });
      expect(data.createModel).toMatchObject({
        __typename: "UserError",
        code: "INVALID_INPUT",
        field: "name",
      });
    }
    await gql(hangar, CREATE, { name: "dup" });
    const again = await gql(hangar, CREATE, { name: "dup" });
    expect(again.createModel).toMatchObject({ __typename: "UserError", code: "NAME_TAKEN", field: "name" });
  });

  it("answers null for unknown and malformed IDs in queries and NOT_FOUND in mutations", async () => {
    for (const id of ["mdl_AAAAAAAAAAAAAAAA", "garbage", "dep_short", ""]) {
      const data = await gql(
        hangar,
        `query($id: ID!) { node(id: $id) { id } model(id: $id) { id } deployment(id: $id) { id } }`,
        { id },
      );
      expect(data).toEqual({ node: null, model: null, deployment: null });
      const deleted = await gql(hangar, DELETE, { id });
      expect(deleted.deleteModel).toMatchObject({ __typename: "UserError", code: "NOT_FOUND" });
    }
  });

  it("requires exactly one of id or name", async () => {
    const { body } = await gqlRaw(hangar, `{ model { id } }`);
    expect(body.errors?.[0]?.message).toContain("exactly one of id or name");
  });

  it("soft-deletes: the model leaves lists and names but stays readable by ID", async () => {
    const created = (await gql(hangar, CREATE, { name: "to-delete" })).createModel;
    const deleted = await gql(hangar, DELETE, { id: created.id });
    expect(deleted.deleteModel.deletedAt).toBeTruthy();
    const data = await gql(
      hangar,
      `query($id: ID!) { byId: model(id: $id) { name deletedAt } byName: model(name: "to-delete") { id }
        node(id: $id) { id ... on Model { name } } models(first: 500) { edges { node { id } } } }`,
      { id: created.id },
    );
    expect(data.byId).toMatchObject({ name: "to-delete" });
    expect(data.byName).toBeNull();
    expect(data.node).toEqual({ id: created.id, name: "to-delete" });
    expect(data.models.edges.map((e: { node: { id: string } }) => e.node.id)).not.toContain(created.id);
    const again = await gql(hangar, CREATE, { name: "to-delete" });
    expect(again.createModel.__typename).toBe("Model");
    expect(again.createModel.id).not.toBe(created.id);
    const gateway = await fetch(`${hangar.url}/models/${created.id}/predict`, {
      method: "POST",
      headers: { authorization: `Bearer ${hangar.key}` },
      body: "{}",
    });
    expect(gateway.status).toBe(404);
    expect(await gateway.json()).toMatchObject({ error_code: "model_does_not_exist" });
  });

  it("clamps first above the maximum instead of refusing it", async () => {
    const data = await gql(
      hangar,
      `{ models(first: 100000) { edges { node { id } } pageInfo { hasNextPage } } }`,
    );
    expect(data.models.pageInfo.hasNextPage).toBe(false);
  });
});

describe("model events", () => {
  it("streams events live and replays from a cursor without loss or duplicates", async () => {
    const model = (await gql(hangar, CREATE, { name: "events" })).createModel;
    const history = await gql(
      hangar,
      `query($id: ID!) { model(id: $id) { events { edges { cursor node { type } } } } }`,
      { id: model.id },
    );
    const first = history.model.events.edges;
    expect(first.map((e: { node: { type: string } }) => e.node.type)).toEqual([
      "MODEL_CREATED",
      "ENVIRONMENT_CREATED",
    ]);
    const client = wsClient(hangar);
    const query = `subscription($id: ID!, $after: String) { modelEvents(modelId: $id, after: $after) { cursor type } }`;
    const replay = subscribe(client, query, { id: model.id, after: first[0].cursor });
    const live = subscribe(client, query, { id: model.id });
    await replay.until((items) => items.length >= 1);
    await gql(hangar, DELETE, { id: model.id });
    await replay.until((items) => items.some((i) => i.modelEvents.type === "MODEL_DELETED"));
    await live.until((items) => items.some((i) => i.modelEvents.type === "MODEL_DELETED"));
    const replayed = replay.items.map((i) => i.modelEvents.type);
    expect(replayed).toEqual(["ENVIRONMENT_CREATED", "ENVIRONMENT_DELETED", "MODEL_DELETED"]);
    expect(live.items.map((i) => i.modelEvents.type)).toEqual(["ENVIRONMENT_DELETED", "MODEL_DELETED"]);
    const cursors = replay.items.map((i) => i.modelEvents.cursor);
    expect(new Set(cursors).size).toBe(cursors.length);
    replay.dispose();
    live.dispose();
    await client.dispose();
  });
});

describe("query limits", () => {
  it("refuses a query nested beyond the depth limit", async () => {
    let selection = "id";
    for (let i = 0; i < 8; i++) selection = `model { deployments { edges { node { ${selection} } } } }`;
    const { body } = await gqlRaw(
      hangar,
      `{ models { edges { node { deployments { edges { node { ${selection} } } } } } } }`,
    );
    expect(body.data ?? null).toBeNull();
    // Refused before it runs (API.md section 8); test/integration/graphql-limits.test.ts has the rest.
    const depth = body.errors?.find((e) => e.message.startsWith("query depth"));
    expect(depth?.message).toBe("query depth 39 is over the limit of 12 (HANGAR_GRAPHQL_MAX_DEPTH)");
    expect(depth?.extensions?.code).toBe("QUERY_TOO_COMPLEX");
  });
});
