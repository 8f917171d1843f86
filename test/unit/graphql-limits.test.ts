/**
 * GraphQL limits (src/graphql/limits.ts) against the real schema: the cost arithmetic (every field 1,
 * a page multiplies what it holds by its clamped `first`/`last`, `logs` by its clamped `last`),
 * depth and alias counting, introspection left out, and each limit's error as yoga's envelop (the one
 * HTTP and WebSocket requests go through) produces it, validation cache included.
 */
import { type DocumentNode, GraphQLError, getIntrospectionQuery, parse } from "graphql";
import { createYoga } from "graphql-yoga";
import { describe, expect, it } from "vitest";
import { type GraphQLLimits, graphqlLimits, measure, QUERY_TOO_COMPLEX } from "../../src/graphql/limits.ts";
import { schema } from "../../src/graphql/schema.ts";
import { aliasedQuery, deepQuery } from "../support/limits.ts";

const DEFAULTS: GraphQLLimits = {
  graphqlMaxDepth: 12,
  graphqlMaxTokens: 5000,
  graphqlMaxAliases: 50,
  graphqlMaxCost: 50_000,
};

function measured(query: string, variables: Record<string, unknown> = {}) {
  const result = measure(schema, parse(query), { variables });
  if (!result) throw new Error("no operation measured");
  return result;
}

const cost = (query: string, variables: Record<string, unknown> = {}) => measured(query, variables).cost;

describe("cost", () => {
  it("charges 1 a field, and multiplies a page's selection by its size (default 100)", () => {
    expect(cost(`{ model(name: "m") { id name } }`)).toBe(3);
    // models + 100 × (edges + node + id)
    expect(cost("{ models { edges { node { id } } } }")).toBe(1 + 100 * 3);
    expect(cost("{ models(first: 7) { edges { node { id } } } }")).toBe(1 + 7 * 3);
    expect(cost("{ models(last: 9) { edges { node { id } } } }")).toBe(1 + 9 * 3);
    // pageInfo is part of what the page holds.
    expect(cost("{ models(first: 2) { pageInfo { hasNextPage } } }")).toBe(1 + 2 * 2);
  });

  it("clamps first/last as the connections do: to 0..500", () => {
    expect(cost("{ models(first: 500) { edges { cursor } } }")).toBe(1 + 500 * 2);
    expect(cost("{ models(first: 100000) { edges { cursor } } }")).toBe(1 + 500 * 2);
    expect(cost("{ models(last: 100000) { edges { cursor } } }")).toBe(1 + 500 * 2);
    expect(cost("{ models(first: 0) { edges { cursor } } }")).toBe(1);
    expect(cost("{ models(first: -5) { edges { cursor } } }")).toBe(1);
  });

  it("reads first from the variables", () => {
    const query = "query($n: Int) { models(first: $n) { edges { cursor } } }";
    expect(cost(query, { n: 40 })).toBe(1 + 40 * 2);
    expect(cost(query, { n: 4000 })).toBe(1 + 500 * 2);
    expect(cost(query)).toBe(1 + 100 * 2);
  });

  it("charges Deployment.logs by its last (default 100, at most 10000)", () => {
    expect(cost(`{ deployment(id: "d") { logs { line } } }`)).toBe(1 + 1 + 100);
    expect(cost(`{ deployment(id: "d") { logs(last: 1000) { line at } } }`)).toBe(1 + 1 + 1000 * 2);
    expect(cost(`{ deployment(id: "d") { logs(last: 50000) { line } } }`)).toBe(1 + 1 + 10_000);
    expect(cost(`{ deployment(id: "d") { logs(last: 0) { line } } }`)).toBe(2);
  });

  it("multiplies nested pages", () => {
    const logs = 1 + 1000; // logs(last: 1000) { line }
    const deployments = 1 + 500 * (1 + 1 + logs); // edges { node { logs } }
    const models = 1 + 500 * (1 + 1 + deployments);
    expect(
      cost(
        "{ models(first: 500) { edges { node { deployments(first: 500) { edges { node { logs(last: 1000) { line } } } } } } } }",
      ),
    ).toBe(models);
    expect(models).toBe(250_751_501);
  });

  it("counts other lists (no page argument) once, and fragments' fields where they are spread", () => {
    // models + 1 × (edges + node + environments + name)
    expect(cost("{ models(first: 1) { edges { node { environments { name } } } } }")).toBe(5);
    expect(
      cost(`{ node(id: "x") { ...M ... on Deployment { status } } } fragment M on Model { name createdAt }`),
    ).toBe(1 + 2 + 1);
    expect(cost(`{ model(name: "m") { __typename } }`)).toBe(2);
  });
});

describe("depth and aliases", () => {
  it("counts the root field as depth 1; fragments add no level", () => {
    expect(measured(`{ model(name: "m") { id } }`).depth).toBe(2);
    expect(measured("{ models { edges { node { id } } } }").depth).toBe(4);
    expect(
      measured(`{ node(id: "x") { ... on Model { ...N } } } fragment N on Model { environments { name } }`)
        .depth,
    ).toBe(3);
  });

  it("counts aliases in the operation and its fragments, but not __typename's", () => {
    const query = `{ a: model(name: "a") { ...F } b: model(name: "b") { ...F } t: __typename }
      fragment F on Model { n: name }`;
    expect(measured(query).aliases).toBe(4);
  });

  it("measures the operation that runs", () => {
    const document = parse(`query A { a: models { edges { cursor } } } query B { model(name: "m") { id } }`);
    expect(measure(schema, document, { operationName: "A" })).toMatchObject({
      aliases: 1,
      cost: 1 + 100 * 2,
    });
    expect(measure(schema, document, { operationName: "B" })).toMatchObject({ aliases: 0, cost: 2 });
    expect(measure(schema, document)).toBeNull();
  });
});

describe("introspection", () => {
  it("is left out of depth, aliases and cost", () => {
    expect(measured(getIntrospectionQuery())).toEqual({ depth: 0, aliases: 0, cost: 0 });
    let typeRef = "name";
    for (let i = 0; i < 20; i++) typeRef = `ofType { ${typeRef} }`;
    expect(measured(`{ __type(name: "Model") { fields { t: type { ${typeRef} } } } }`)).toEqual({
      depth: 0,
      aliases: 0,
      cost: 0,
    });
  });

  it("leaves the rest of a document measured", () => {
    expect(measured("{ __schema { types { name } } models(first: 1) { edges { cursor } } }")).toEqual({
      depth: 3,
      aliases: 0,
      cost: 3,
    });
  });
});

/** Parses and validates as yoga does for a request (HTTP, and server.ts's onSubscribe on WebSocket). */
function check(
  yoga: ReturnType<typeof limitedYoga>,
  query: string,
  variables?: Record<string, unknown>,
): readonly GraphQLError[] {
  const enveloped = yoga.getEnveloped({ params: { query, variables } } as never);
  let document: DocumentNode;
  try {
    document = enveloped.parse(query);
  } catch (error) {
    if (error instanceof GraphQLError) return [error];
    throw error;
  }
  return enveloped.validate(enveloped.schema, document);
}

function limitedYoga(limits: Partial<GraphQLLimits> = {}) {
  return createYoga({ schema, plugins: graphqlLimits({ ...DEFAULTS, ...limits }), logging: false });
}

describe("refusals", () => {
  const yoga = limitedYoga();

  it("passes a document within every limit", () => {
    expect(check(yoga, "{ models { edges { node { id name } } } }")).toEqual([]);
    expect(check(yoga, getIntrospectionQuery())).toEqual([]);
  });

  it("refuses depth over the limit, saying so", () => {
    expect(measured(deepQuery(12)).depth).toBe(12);
    expect(check(yoga, deepQuery(12))).toEqual([]);
    expect(measured(deepQuery(14)).depth).toBe(14);
    const [error, ...more] = check(yoga, deepQuery(14));
    expect(more).toEqual([]);
    expect(error?.message).toBe("query depth 14 is over the limit of 12 (HANGAR_GRAPHQL_MAX_DEPTH)");
    expect(error?.extensions).toMatchObject({ code: QUERY_TOO_COMPLEX, limit: "depth", max: 12, found: 14 });
  });

  it("refuses aliases over the limit", () => {
    expect(check(yoga, aliasedQuery(50))).toEqual([]);
    const [error] = check(yoga, aliasedQuery(51));
    expect(error?.message).toBe("alias count 51 is over the limit of 50 (HANGAR_GRAPHQL_MAX_ALIASES)");
    expect(error?.extensions.code).toBe(QUERY_TOO_COMPLEX);
  });

  it("refuses cost over the limit", () => {
    const query = (n: number) =>
      `{ models(first: 250) { edges { node { deployments(first: ${n}) { edges { cursor } } } } } }`;
    // 1 + 250 × (3 + 2n): 49,751 at n = 98, 50,251 at n = 99
    expect(check(yoga, query(98))).toEqual([]);
    const [error] = check(yoga, query(99));
    expect(error?.message).toBe("query cost 50251 is over the limit of 50000 (HANGAR_GRAPHQL_MAX_COST)");
    expect(error?.extensions).toMatchObject({ code: QUERY_TOO_COMPLEX, limit: "cost", found: 50_251 });
  });

  it("refuses tokens over the limit while parsing", () => {
    const small = limitedYoga({ graphqlMaxTokens: 20 });
    // { model ( name : "m" ) { … 6 fields … environments { name } } }: 20 tokens
    const fields = "id name createdAt deletedAt predictUrl __typename environments { name }";
    expect(check(small, `{ model(name: "m") { ${fields} } }`)).toEqual([]);
    const [error] = check(small, `{ model(name: "m") { ${fields} id } }`);
    expect(error?.message).toBe(
      "query token count is over the limit of 20 (HANGAR_GRAPHQL_MAX_TOKENS): parsing stopped at token 21",
    );
    expect(error?.extensions.code).toBe(QUERY_TOO_COMPLEX);
  });

  it("measures every request again, whatever the validation cache holds", () => {
    // The cache keeps the first answer for a document (here, one with our refusal in it).
    const query =
      "query($n: Int) { models(first: $n) { edges { node { deployments(first: 500) { edges { cursor } } } } } }";
    expect(check(yoga, query, { n: 500 }).map((e) => e.extensions.code)).toEqual([QUERY_TOO_COMPLEX]);
    expect(check(yoga, query, { n: 1 })).toEqual([]);
    expect(check(yoga, query, { n: 500 }).map((e) => e.extensions.code)).toEqual([QUERY_TOO_COMPLEX]);
  });

  it("reports other validation errors as they are, without measuring", () => {
    const errors = check(yoga, "{ models(first: 500) { edges { node { nope } } } }");
    expect(errors.map((e) => e.extensions.code)).not.toContain(QUERY_TOO_COMPLEX);
    expect(errors[0]?.message).toMatch(/nope/);
  });
});
