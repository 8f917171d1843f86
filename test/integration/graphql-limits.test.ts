/**
 * GraphQL limits and masked errors on a real server (API.md section 8): documents over the depth,
 * token, alias or cost limit are refused before they run with QUERY_TOO_COMPLEX, over HTTP and at
 * subscribe time over graphql-ws (an `error` message; the socket stays usable); documents just under
 * pass; GraphiQL's introspection query passes; the limits follow the environment. An internal error
 * answers "Unexpected error." with an errorId that the server's log line for it also has.
 */
import { getIntrospectionQuery } from "graphql";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { gql, gqlRaw } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { aliasedQuery, deepQuery, manyOperations, modelChain } from "../support/limits.ts";
import { waitFor } from "../support/wait.ts";

let hangar: TestHangar;
let modelId: string;
let firstEventCursor: string;

/** The server of "limits from the environment", started with the file's own: the two starts overlap. */
let tightStart: Promise<TestHangar>;

beforeAll(async () => {
  tightStart = startHangar({
    env: {
      HANGAR_GRAPHQL_MAX_DEPTH: "4",
      HANGAR_GRAPHQL_MAX_TOKENS: "300",
      HANGAR_GRAPHQL_MAX_ALIASES: "2",
      HANGAR_GRAPHQL_MAX_COST: "100",
    },
  });
  // Awaited by its describe; a failure is reported there, not as an unhandled rejection.
  tightStart.catch(() => {});
  hangar = await startHangar({ env: { HANGAR_LOG_LEVEL: "error" } });
  const created = await gql(
    hangar,
    `mutation { createModel(input: { name: "limits" }) { ... on Model { id } } }`,
  );
  modelId = created.createModel.id;
  const history = await gql(hangar, `query($id: ID!) { model(id: $id) { events { edges { cursor } } } }`, {
    id: modelId,
  });
  firstEventCursor = history.model.events.edges[0].cursor;
});

afterAll(async () => {
  await hangar?.dispose();
});

// biome-ignore lint/suspicious/noExplicitAny: answers are inspected loosely.
type Json = any;

async function post(target: TestHangar, body: Record<string, unknown>, accept?: string) {
  const response = await fetch(`${target.url}/graphql`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      authorization: `Bearer ${target.key}`,
      ...(accept ? { accept } : {}),
    },
    body: JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Json };
}

/** The one QUERY_TOO_COMPLEX error of a refused answer, which has no data. */
function refusal(body: Json): { message: string; extensions: Record<string, unknown> } {
  expect(body.data ?? null).toBeNull();
  expect(body.errors).toHaveLength(1);
  expect(body.errors[0].extensions.code).toBe("QUERY_TOO_COMPLEX");
  return body.errors[0];
}

const OVER_COST =
  "{ models(first: 500) { edges { node { deployments(first: 500) { edges { node { logs(last: 1000) { line } } } } } } } }";
// 1 + 250 × (3 + 2n): 49,751 for n = 98, 50,251 for n = 99
const costOf = (n: number) =>
  `{ models(first: 250) { edges { node { deployments(first: ${n}) { edges { cursor } } } } } }`;

describe("over HTTP", () => {
  it("refuses a document over each limit, saying which and by how much", async () => {
    const depth = refusal((await gqlRaw(hangar, deepQuery(14))).body);
    expect(depth.message).toBe("query depth 14 is over the limit of 12 (HANGAR_GRAPHQL_MAX_DEPTH)");
    const aliases = refusal((await gqlRaw(hangar, aliasedQuery(51))).body);
    expect(aliases.message).toBe("alias count 51 is over the limit of 50 (HANGAR_GRAPHQL_MAX_ALIASES)");
    const tokens = refusal(
      (
        await post(hangar, {
          query: `${manyOperations(5000)} query Last { __typename }`,
          operationName: "Q0",
        })
      ).body,
    );
    expect(tokens.message).toBe(
      "query token count is over the limit of 5000 (HANGAR_GRAPHQL_MAX_TOKENS): parsing stopped at token 5001",
    );
    const cost = refusal((await gqlRaw(hangar, OVER_COST)).body);
    expect(cost.message).toBe("query cost 250751501 is over the limit of 50000 (HANGAR_GRAPHQL_MAX_COST)");
    expect(refusal((await gqlRaw(hangar, costOf(99))).body).message).toContain("query cost 50251 ");
  });

  it("answers every refusal with the status yoga gives validation errors (200 as JSON, 400 as graphql-response)", async () => {
    const refused = [
      { query: deepQuery(13) },
      { query: aliasedQuery(51) },
      { query: manyOperations(5005), operationName: "Q0" },
      { query: OVER_COST },
    ];
    for (const [accept, status] of [
      ["application/json", 200],
      ["application/graphql-response+json", 400],
    ] as const) {
      const invalid = await post(hangar, { query: "{ nope }" }, accept);
      expect(invalid.body.errors[0].extensions.code).toBe("GRAPHQL_VALIDATION_FAILED");
      expect(invalid.status).toBe(status);
      for (const body of refused) {
        const answer = await post(hangar, body, accept);
        refusal(answer.body);
        expect(answer.status).toBe(status);
      }
    }
    // gqlRaw sends no Accept header: yoga answers as JSON.
    expect((await gqlRaw(hangar, OVER_COST)).status).toBe(200);
  });

  it("passes documents just under each limit", async () => {
    const depth = await gqlRaw(hangar, deepQuery(12));
    expect(depth.body).toEqual({ data: { model: null } });
    const aliases = await gqlRaw(hangar, aliasedQuery(50));
    expect(aliases.body.errors).toBeUndefined();
    expect(Object.keys(aliases.body.data)).toHaveLength(50);
    const tokens = await post(hangar, { query: manyOperations(5000), operationName: "Q0" });
    expect(tokens.body).toEqual({ data: { __typename: "Query" } });
    const cost = await gqlRaw(hangar, costOf(98));
    expect(cost.body.errors).toBeUndefined();
    expect(cost.body.data.models.edges.length).toBeGreaterThan(0);
  });

  it("counts first from the variables", async () => {
    const query =
      "query($n: Int) { models(first: 250) { edges { node { deployments(first: $n) { edges { cursor } } } } } }";
    // The same document three times: yoga's validation cache must not answer for other variables.
    refusal((await gqlRaw(hangar, query, { n: 99 })).body);
    expect((await gqlRaw(hangar, query, { n: 98 })).body.errors).toBeUndefined();
    refusal((await gqlRaw(hangar, query, { n: 99 })).body);
  });

  it("lets GraphiQL's introspection query through", async () => {
    const { status, body } = await gqlRaw(hangar, getIntrospectionQuery());
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    expect(body.data.__schema.types.map((t: { name: string }) => t.name)).toContain("Deployment");
  });
});

/** A graphql-transport-ws connection seen message by message. */
async function openSocket(target: TestHangar) {
  const socket = new WebSocket(`${target.url.replace("http", "ws")}/graphql`, "graphql-transport-ws");
  const messages: Json[] = [];
  socket.on("message", (data) => messages.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  const message = (check: (m: Json) => boolean, what: string) =>
    waitFor(() => messages.find(check), { timeoutMs: 15_000, what });
  socket.send(
    JSON.stringify({ type: "connection_init", payload: { authorization: `Bearer ${target.key}` } }),
  );
  await message((m) => m.type === "connection_ack", "connection_ack");
  return {
    socket,
    subscribe(id: string, payload: Record<string, unknown>) {
      socket.send(JSON.stringify({ id, type: "subscribe", payload }));
    },
    /** The first message for operation `id`. */
    answer: (id: string) => message((m) => m.id === id, `an answer to ${id}`),
  };
}

describe("over WebSocket", () => {
  it("refuses subscriptions over each limit with an error message, and the socket stays usable", async () => {
    const ws = await openSocket(hangar);
    const events = (selection: string) =>
      `subscription($id: ID!) { modelEvents(modelId: $id) { ${selection} } }`;
    const variables = { id: modelId };
    // modelEvents(1) deployment(2) model(3) + 11 levels = 14
    ws.subscribe("depth", { query: events(`deployment { model { ${modelChain(11)} } }`), variables });
    ws.subscribe("aliases", {
      query: events(Array.from({ length: 51 }, (_, i) => `t${i}: type`).join(" ")),
      variables,
    });
    ws.subscribe("tokens", { query: events("type ".repeat(5000)), variables });
    ws.subscribe("cost", {
      query: events(
        "deployment { model { deployments(first: 500) { edges { node { logs(last: 1000) { line } } } } } }",
      ),
      variables,
    });
    const expected = {
      depth: "query depth 14 is over the limit of 12 (HANGAR_GRAPHQL_MAX_DEPTH)",
      aliases: "alias count 51 is over the limit of 50 (HANGAR_GRAPHQL_MAX_ALIASES)",
      tokens:
        "query token count is over the limit of 5000 (HANGAR_GRAPHQL_MAX_TOKENS): parsing stopped at token 5001",
      // deployment + model + deployments(500 × (edges + node + logs(1 + 1000)))
      cost: `query cost ${1 + 1 + 1 + 1 + 500 * (1 + 1 + 1 + 1000)} is over the limit of 50000 (HANGAR_GRAPHQL_MAX_COST)`,
    };
    for (const [id, message] of Object.entries(expected)) {
      const answer = await ws.answer(id);
      expect(answer.type).toBe("error");
      expect(answer.payload).toHaveLength(1);
      expect(answer.payload[0]).toMatchObject({ message, extensions: { code: "QUERY_TOO_COMPLEX" } });
    }
    // Still open: a subscription within the limits streams (the replay of the model's second event).
    ws.subscribe("fine", {
      query: `subscription($id: ID!, $after: String) { modelEvents(modelId: $id, after: $after) { type deployment { model { ${modelChain(9)} } } } }`,
      variables: { id: modelId, after: firstEventCursor },
    });
    const fine = await ws.answer("fine");
    expect(fine).toMatchObject({
      type: "next",
      payload: { data: { modelEvents: { type: "ENVIRONMENT_CREATED" } } },
    });
    ws.subscribe("query", { query: deepQuery(12) });
    expect(await ws.answer("query")).toMatchObject({ type: "next", payload: { data: { model: null } } });
    expect(ws.socket.readyState).toBe(WebSocket.OPEN);
    ws.socket.close();
  });

  it("refuses queries over the limits too, and passes introspection", async () => {
    const ws = await openSocket(hangar);
    ws.subscribe("cost", { query: OVER_COST });
    expect(await ws.answer("cost")).toMatchObject({
      type: "error",
      payload: [{ extensions: { code: "QUERY_TOO_COMPLEX" } }],
    });
    ws.subscribe("introspection", { query: getIntrospectionQuery() });
    const introspection = await ws.answer("introspection");
    expect(introspection.type).toBe("next");
    expect(introspection.payload.errors).toBeUndefined();
    ws.socket.close();
  });
});

describe("limits from the environment", () => {
  let tight: TestHangar;

  beforeAll(async () => {
    tight = await tightStart;
  });

  afterAll(async () => {
    await tight?.dispose();
  });

  it("refuses over and passes at each configured limit", async () => {
    expect(refusal((await gqlRaw(tight, deepQuery(5))).body).message).toBe(
      "query depth 5 is over the limit of 4 (HANGAR_GRAPHQL_MAX_DEPTH)",
    );
    expect((await gqlRaw(tight, deepQuery(4))).body).toEqual({ data: { model: null } });
    expect(refusal((await gqlRaw(tight, aliasedQuery(3))).body).message).toBe(
      "alias count 3 is over the limit of 2 (HANGAR_GRAPHQL_MAX_ALIASES)",
    );
    expect((await gqlRaw(tight, aliasedQuery(2))).body.errors).toBeUndefined();
    expect(
      refusal((await post(tight, { query: manyOperations(305), operationName: "Q0" })).body).message,
    ).toBe(
      "query token count is over the limit of 300 (HANGAR_GRAPHQL_MAX_TOKENS): parsing stopped at token 301",
    );
    expect(
      (await post(tight, { query: manyOperations(300), operationName: "Q0" })).body.errors,
    ).toBeUndefined();
    // 1 + 100 × 2 = 201, and 1 + 49 × 2 = 99
    expect(refusal((await gqlRaw(tight, "{ models { edges { cursor } } }")).body).message).toBe(
      "query cost 201 is over the limit of 100 (HANGAR_GRAPHQL_MAX_COST)",
    );
    expect((await gqlRaw(tight, "{ models(first: 49) { edges { cursor } } }")).body.errors).toBeUndefined();
    // Introspection is outside depth, aliases and cost (its 163 tokens are under 300).
    expect((await gqlRaw(tight, getIntrospectionQuery())).body.errors).toBeUndefined();
  });
});

describe("internal errors", () => {
  // PostgreSQL cannot hold a NUL character in text, so looking up such a name fails inside the
  // database driver: an unexpected error, reached through the public API alone.
  const LOOKUP = "query($name: String!) { model(name: $name) { id } }";
  const variables = { name: "bad\u0000name" };

  /** The server's error-level log lines (pino JSON) written after `from` characters of its output. */
  function errorLines(from: number): Json[] {
    return hangar
      .output()
      .slice(from)
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as Json)
      .filter((entry) => entry.level >= 50);
  }

  /**
   * Two failing requests, then their log lines: the second's line comes after anything logged for the
   * first, so the first's are all there to count once it has arrived.
   */
  async function twoFailures(send: () => Promise<Json>) {
    const from = hangar.output().length;
    const errors = [await send(), await send()];
    for (const error of errors) {
      expect(error.message).toBe("Unexpected error.");
      expect(error.extensions).toMatchObject({ code: "INTERNAL_SERVER_ERROR" });
      expect(error.extensions.errorId).toMatch(/^[0-9a-f]{12}$/);
    }
    const ids = errors.map((e) => e.extensions.errorId);
    expect(ids[0]).not.toBe(ids[1]);
    await waitFor(() => errorLines(from).some((line) => line.errorId === ids[1]), {
      timeoutMs: 10_000,
      what: `the log line with errorId ${ids[1]}`,
    });
    const lines = errorLines(from);
    // One line per error (yoga's own, without the id, is left out), with the id and the cause.
    expect(lines.map((line) => line.errorId)).toEqual(ids);
    for (const line of lines) {
      expect(line.msg).toBe("GraphQL request failed");
      expect(line.err.message).toContain("invalid byte sequence");
    }
  }

  it("are masked over HTTP, with an id the server's log line has", async () => {
    await twoFailures(async () => {
      const { body } = await gqlRaw(hangar, LOOKUP, variables);
      expect(body.errors).toHaveLength(1);
      expect(JSON.stringify(body)).not.toMatch(/prisma|invalid byte|22021/i);
      return body.errors?.[0];
    });
  });

  it("are masked over WebSocket the same way", async () => {
    const ws = await openSocket(hangar);
    let n = 0;
    await twoFailures(async () => {
      const id = `bad${n++}`;
      ws.subscribe(id, { query: LOOKUP, variables });
      const answer = await ws.answer(id);
      expect(answer.type).toBe("next");
      expect(answer.payload.errors).toHaveLength(1);
      expect(JSON.stringify(answer.payload)).not.toMatch(/prisma|invalid byte|22021/i);
      return answer.payload.errors[0];
    });
    ws.socket.close();
  });
});
