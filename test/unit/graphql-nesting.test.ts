/** src/graphql/nesting.ts: a document nested deep enough to overflow the parser is refused before parsing. */
import { GraphQLError } from "graphql";
import { createSchema, createYoga } from "graphql-yoga";
import { describe, expect, it } from "vitest";
import { documentNesting, MAX_DOCUMENT_NESTING, useDocumentNestingLimit } from "../../src/graphql/nesting.ts";

const schema = createSchema({
  typeDefs: "type Query { a(x: [[Int]], s: String): Q }  type Q { a: Q  n: Int }",
  resolvers: { Query: { a: () => ({}) }, Q: { a: () => ({}), n: () => 1 } },
});

function yoga(withPlugin: boolean) {
  return createYoga({
    schema,
    logging: false,
    plugins: withPlugin ? [useDocumentNestingLimit()] : [],
  });
}

function post(query: string): Request {
  return new Request("http://h/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ query }),
  });
}

const deep = (n: number) => `{ ${"a { ".repeat(n)}n${" }".repeat(n)} }`;

describe("documentNesting", () => {
  it.each([
    ["", 0],
    ["{ a }", 1],
    ["{ a { n } }", 2],
    ["query($x: [[Int]]) { a(x: $x) { n } }", 3],
    ["{ a(x: [[1, 2], [3]]) { n } }", 4],
    ['{ a(s: "{{{{[[[[((((") { n } }', 2],
    ['{ a(s: "\\"{{{{") { n } }', 2],
    ['{ a(s: """ {{{{ \\""" {{{{ """) { n } }', 2],
    ["# {{{{{{{{\n{ a }", 1],
    ["{ a } # ((((((\r{ a }", 1],
    ["}}}}{ a }", 1],
    [deep(500), 501],
  ])("measures %j as %i", (source, expected) => {
    expect(documentNesting(source)).toBe(expected);
  });

  it("stops counting past the limit", () => {
    expect(documentNesting("{".repeat(100_000), 10)).toBe(11);
  });

  it("copes with unterminated strings, block strings and comments", () => {
    expect(documentNesting('{ a(s: "{{{')).toBe(2);
    expect(documentNesting('{ a(s: """{{{')).toBe(2);
    expect(documentNesting("{ # {{{")).toBe(1);
  });
});

describe("useDocumentNestingLimit", () => {
  it("yoga alone answers a document nested 3,000 deep with a 500 (the parser overflows its stack)", async () => {
    expect((await yoga(false).fetch(post(deep(3000)))).status).toBe(500);
  });

  it("answers it with QUERY_TOO_COMPLEX instead, unterminated or not, with yoga's statuses for refusals", async () => {
    for (const query of [deep(3000), "{ a ".repeat(3000), `{ a(x: ${"[".repeat(5000)}) { n } }`]) {
      // As for yoga's own validation errors: 400 for a client that speaks graphql-response+json, else 200.
      for (const [accept, status] of [
        ["application/graphql-response+json", 400],
        ["application/json", 200],
      ] as const) {
        const request = post(query);
        request.headers.set("accept", accept);
        const response = await yoga(true).fetch(request);
        expect(response.status).toBe(status);
        const body = (await response.json()) as {
          errors: { message: string; extensions: { code: string } }[];
        };
        expect(body.errors[0]?.extensions.code).toBe("QUERY_TOO_COMPLEX");
        expect(body.errors[0]?.message).toContain(`limit of ${MAX_DOCUMENT_NESTING}`);
      }
    }
  });

  it("lets a document at the limit through to the parser", async () => {
    const response = await yoga(true).fetch(post(deep(MAX_DOCUMENT_NESTING - 1)));
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ data: { a: { a: {} } } });
  });

  it("refuses through envelop's parse as well, as the WebSocket path calls it", () => {
    const { parse } = yoga(true).getEnveloped({});
    expect(() => parse(deep(3000))).toThrow(GraphQLError);
    expect(() => parse(deep(10))).not.toThrow();
  });
});
