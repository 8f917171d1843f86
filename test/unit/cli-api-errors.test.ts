import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { WebSocketServer } from "ws";
import { HangarApi } from "../../src/cli/api.ts";
import { CliError, errorForCode, forbiddenError, GRAPHQL_ERROR_CODES } from "../../src/cli/errors.ts";

/**
 * A stand-in for Hangar that answers what each test sets: how the CLI turns permission refusals and
 * limit errors into messages does not depend on a server that grants or refuses for real.
 */
type Answer = { status: number; body: unknown };
let answers: { graphql: Answer; viewer: Answer; gateway: Answer; subscription: Record<string, unknown> };
let viewerRequests = 0;
let server: Server;
let sockets: WebSocketServer;
let url: string;

const FORBIDDEN = { message: "API keys need an ADMIN key", extensions: { code: "FORBIDDEN" } };

function reply(res: ServerResponse, answer: Answer): void {
  res.writeHead(answer.status, { "content-type": "application/json" });
  res.end(JSON.stringify(answer.body));
}

async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  if (req.url === "/graphql") {
    const { query } = JSON.parse(Buffer.concat(chunks).toString()) as { query: string };
    if (/\bviewer\b/.test(query)) {
      viewerRequests += 1;
      reply(res, answers.viewer);
    } else reply(res, answers.graphql);
  } else reply(res, answers.gateway);
}

beforeAll(async () => {
  server = createServer((req, res) => void handle(req, res));
  // graphql-transport-ws, as far as a subscription needs: ack the connection, answer the subscribe.
  sockets = new WebSocketServer({ server, handleProtocols: () => "graphql-transport-ws" });
  sockets.on("connection", (socket) => {
    socket.on("message", (data) => {
      const message = JSON.parse(String(data)) as { type: string; id?: string };
      if (message.type === "connection_init") socket.send(JSON.stringify({ type: "connection_ack" }));
      if (message.type === "subscribe")
        socket.send(JSON.stringify({ id: message.id, ...answers.subscription }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  sockets.close();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  viewerRequests = 0;
  answers = {
    graphql: { status: 200, body: { data: null, errors: [FORBIDDEN] } },
    viewer: { status: 200, body: { data: { viewer: { name: "ci", role: "DEPLOYER" } } } },
    gateway: { status: 403, body: { error: "this key may not call production", error_code: "forbidden" } },
    subscription: { type: "next", payload: { data: null, errors: [FORBIDDEN] } },
  };
});

async function failure(promise: Promise<unknown>): Promise<CliError> {
  const error = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(CliError);
  return error as CliError;
}

const HINT = /\n {2}hint: use a key whose role and scope \(models, environments\) allow it/;

describe("a permission refusal", () => {
  it("over GraphQL names the key and its role, with the server's message and a hint", async () => {
    const api = new HangarApi({ url, apiKey: "hk_test" });
    const error = await failure(api.query("query { apiKeys { edges { cursor } } }"));
    expect(error.exitCode).toBe(1);
    expect(error.message).toMatch(
      /^the API key 'ci' \(DEPLOYER\) may not do this: API keys need an ADMIN key \[FORBIDDEN\]/,
    );
    expect(error.message).toMatch(HINT);
    // The key is asked for once per client, however many refusals.
    await failure(api.query("query { apiKeys { edges { cursor } } }"));
    expect(viewerRequests).toBe(1);
  });

  it("says each different message once, and leaves out errors of other kinds", async () => {
    answers.graphql.body = {
      data: null,
      errors: [
        FORBIDDEN,
        FORBIDDEN,
        { message: "no deploying into production", extensions: { code: "FORBIDDEN" } },
      ],
    };
    const error = await failure(new HangarApi({ url, apiKey: "hk_test" }).query("mutation { x }"));
    expect(error.message).toMatch(
      /may not do this: API keys need an ADMIN key; no deploying into production \[FORBIDDEN\]/,
    );
  });

  it("without an answer to `viewer`, still says that the key may not do it", async () => {
    answers.viewer = {
      status: 200,
      body: { data: null, errors: [{ message: "Cannot query field viewer" }] },
    };
    const error = await failure(new HangarApi({ url, apiKey: "hk_test" }).query("query { x }"));
    expect(error.message).toMatch(/^the API key may not do this: API keys need an ADMIN key \[FORBIDDEN\]/);
  });

  it("at the gateway (403 forbidden) reads the same way", async () => {
    const error = await failure(new HangarApi({ url, apiKey: "hk_test" }).gateway("/models/m/predict", {}));
    expect(error.message).toMatch(
      /^the API key 'ci' \(DEPLOYER\) may not do this: this key may not call production \[forbidden\]/,
    );
    expect(error.message).toMatch(HINT);
  });

  it("a gateway 403 of another kind is returned as it came", async () => {
    answers.gateway = { status: 403, body: { error: "cross-site", error_code: "something_else" } };
    const answer = await new HangarApi({ url, apiKey: "hk_test" }).gateway("/models/m/predict", {});
    expect(answer.status).toBe(403);
    expect(viewerRequests).toBe(0);
  });

  for (const [how, subscription] of [
    ["as a subscription's payload", { type: "next", payload: { data: null, errors: [FORBIDDEN] } }],
    ["as a subscription's error message", { type: "error", payload: [FORBIDDEN] }],
  ] as const) {
    it(`${how} ends the subscription with the same message`, async () => {
      answers.subscription = subscription;
      const api = new HangarApi({ url, apiKey: "hk_test" });
      try {
        const received: unknown[] = [];
        const { done } = api.subscribe("subscription { x }", {}, (data) => {
          received.push(data);
        });
        const error = await failure(done);
        expect(error.message).toMatch(/^the API key 'ci' \(DEPLOYER\) may not do this: API keys need/);
        expect(received).toEqual([]);
      } finally {
        await api.close();
      }
    });
  }
});

describe("other GraphQL errors", () => {
  it("QUERY_TOO_COMPLEX carries its code and a hint naming the limits", async () => {
    answers.graphql.body = {
      errors: [
        { message: "Query depth 13 is over the limit of 12", extensions: { code: "QUERY_TOO_COMPLEX" } },
      ],
    };
    const error = await failure(new HangarApi({ url, apiKey: "hk_test" }).query("query { x }"));
    expect(error.message).toMatch(
      /^Query depth 13 is over the limit of 12 \[QUERY_TOO_COMPLEX\]\n {2}hint: .*MAX_DEPTH/,
    );
    expect(viewerRequests).toBe(0);
  });

  it("an error without a known code reads as before", async () => {
    answers.graphql.body = {
      errors: [{ message: "Cannot query field x", extensions: { code: "GRAPHQL_VALIDATION_FAILED" } }],
    };
    const error = await failure(new HangarApi({ url, apiKey: "hk_test" }).query("query { x }"));
    expect(error.message).toBe("the server answered with an error: Cannot query field x");
  });
});

describe("errorForCode and forbiddenError", () => {
  it("every GraphQL error code the CLI explains has a hint", () => {
    for (const code of GRAPHQL_ERROR_CODES) {
      expect(errorForCode(code, "m").message).toMatch(new RegExp(`^m \\[${code}\\]\\n {2}hint: \\S`));
    }
  });

  it("a command's own hint replaces the general one for that code only", () => {
    const hints = { INVALID_STATE: "the bootstrap key cannot be revoked" };
    expect(errorForCode("INVALID_STATE", "no", hints).message).toBe(
      "no [INVALID_STATE]\n  hint: the bootstrap key cannot be revoked",
    );
    expect(errorForCode("NAME_TAKEN", "taken", hints).message).toBe(
      "taken [NAME_TAKEN]\n  hint: choose another name",
    );
  });

  it("names the key when it is known", () => {
    expect(forbiddenError({ name: "ci", role: "VIEWER" }, "no mutations").message).toMatch(
      /^the API key 'ci' \(VIEWER\) may not do this: no mutations \[FORBIDDEN\]\n {2}hint: /,
    );
    expect(forbiddenError(null, "", "forbidden").message).toMatch(
      /^the API key may not do this: forbidden \[forbidden\]/,
    );
  });
});
