/** src/http/graphql-params.ts: hostile GraphQL parameters are a 400 from yoga, never a 500. */
import { createSchema, createYoga } from "graphql-yoga";
import { describe, expect, it } from "vitest";
import { useMalformedParamsAsBadRequest } from "../../src/http/graphql-params.ts";

const schema = createSchema({ typeDefs: "type Query { a: Int }", resolvers: { Query: { a: () => 1 } } });

function yoga(withPlugin: boolean) {
  return createYoga({
    schema,
    logging: false,
    landingPage: false,
    graphiql: false,
    plugins: withPlugin ? [useMalformedParamsAsBadRequest()] : [],
  });
}

function multipart(operations: string, map: string): FormData {
  const form = new FormData();
  form.set("operations", operations);
  form.set("map", map);
  form.set("0", new Blob(["x"]), "x.txt");
  return form;
}

const hostile: [string, () => Request][] = [
  ["GET with variables that are not JSON", () => new Request("http://h/graphql?query={a}&variables={bad")],
  ["GET with extensions that are not JSON", () => new Request("http://h/graphql?query={a}&extensions=%7B")],
  [
    "a form body with variables that are not JSON",
    () =>
      new Request("http://h/graphql", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "query=%7Ba%7D&variables=nope",
      }),
  ],
  [
    "a multipart map whose entry is not a list",
    () =>
      new Request("http://h/graphql", {
        method: "POST",
        body: multipart('{"query":"{a}"}', '{"0":1}'),
      }),
  ],
  [
    "a multipart map holding a number as a path",
    () =>
      new Request("http://h/graphql", {
        method: "POST",
        body: multipart('{"query":"{a}"}', '{"0":[1]}'),
      }),
  ],
  [
    "multipart operations that are null",
    () =>
      new Request("http://h/graphql", {
        method: "POST",
        body: multipart("null", '{"0":["variables.x"]}'),
      }),
  ],
];

describe("malformed GraphQL parameters", () => {
  it.each(hostile)("yoga alone answers %s with 500 (why the plugin exists)", async (_name, make) => {
    expect((await yoga(false).fetch(make())).status).toBe(500);
  });

  it.each(hostile)("answers %s with 400 BAD_REQUEST", async (_name, make) => {
    const response = await yoga(true).fetch(make());
    expect(response.status).toBe(400);
    const body = (await response.json()) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors[0]).toMatchObject({
      message: "the request's GraphQL parameters are malformed",
      extensions: { code: "BAD_REQUEST" },
    });
  });

  it("leaves yoga's own 400s and good requests alone", async () => {
    const server = yoga(true);
    const badJson = await server.fetch(
      new Request("http://h/graphql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{bad",
      }),
    );
    expect(badJson.status).toBe(400);
    expect(((await badJson.json()) as { errors: { message: string }[] }).errors[0]?.message).toBe(
      "POST body sent invalid JSON.",
    );
    const good = await server.fetch(new Request("http://h/graphql?query={a}&variables={}"));
    expect(good.status).toBe(200);
    expect(await good.json()).toEqual({ data: { a: 1 } });
  });
});
