/**
 * GraphQL limits (API.md section 8): a document over the depth, token, alias or cost limit is refused
 * before it executes, over HTTP and over WebSocket alike (both go through yoga's envelop, whose
 * parse and validate these plugins hook), with a QUERY_TOO_COMPLEX error naming the limit.
 *
 * Tokens are counted while parsing (graphql-armor), over the whole document: that is what bounds the
 * parser and validator, and nothing is known yet about which part is introspection. Depth and
 * aliases (graphql-armor) and cost (@pothos/plugin-complexity, with the field costs set in builder.ts)
 * are measured on the operation that will run, without its introspection (`__schema`, `__type`).
 */
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDepthRule } from "@escape.tech/graphql-armor-max-depth";
import { maxTokensPlugin } from "@escape.tech/graphql-armor-max-tokens";
import { complexityFromQuery } from "@pothos/plugin-complexity";
import {
  type DefinitionNode,
  type DocumentNode,
  GraphQLError,
  type GraphQLSchema,
  getOperationAST,
  Kind,
  type OperationDefinitionNode,
  TypeInfo,
  ValidationContext,
  visit,
} from "graphql";
import type { Plugin } from "graphql-yoga";

export const QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX";

export interface GraphQLLimits {
  graphqlMaxDepth: number;
  graphqlMaxTokens: number;
  graphqlMaxAliases: number;
  graphqlMaxCost: number;
}

type Limit = "depth" | "tokens" | "aliases" | "cost";

const SETTING: Record<Limit, string> = {
  depth: "HANGAR_GRAPHQL_MAX_DEPTH",
  tokens: "HANGAR_GRAPHQL_MAX_TOKENS",
  aliases: "HANGAR_GRAPHQL_MAX_ALIASES",
  cost: "HANGAR_GRAPHQL_MAX_COST",
};

const WHAT: Record<Exclude<Limit, "tokens">, string> = {
  depth: "query depth",
  aliases: "alias count",
  cost: "query cost",
};

/** The error a document over a limit gets; `found` is what the document measured. */
export function queryTooComplex(limit: Limit, max: number, found: number): GraphQLError {
  const message =
    limit === "tokens"
      ? // The parser stops at the first token over the limit, so the total is not known.
        `query token count is over the limit of ${max} (${SETTING.tokens}): parsing stopped at token ${found}`
      : `${WHAT[limit]} ${found} is over the limit of ${max} (${SETTING[limit]})`;
  return new GraphQLError(message, {
    // `http` as yoga gives its own validation errors, so that every refusal gets the same status.
    extensions: { code: QUERY_TOO_COMPLEX, limit, max, found, http: { spec: true, status: 400 } },
  });
}

/** How many items a list field answers: the requested page size, clamped as its resolver clamps it. */
export function pageSize(requested: unknown, fallback: number, max: number): number {
  const size = typeof requested === "number" ? requested : fallback;
  return Math.max(0, Math.min(size, max));
}

const INTROSPECTION = new Set(["__schema", "__type"]);
const UNLIMITED = Number.POSITIVE_INFINITY;

export interface Measures {
  depth: number;
  aliases: number;
  /** null when the variables do not fit the operation (execution refuses it then). */
  cost: number | null;
}

export interface Request {
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  /** Handed to the fields' cost functions. */
  context?: object;
}

/**
 * Depth (the root field counts 1; fragments add no level), aliases (not counting `__typename`'s) and
 * cost of the operation a request runs, without its introspection. null when the document names no
 * single operation to run (execution refuses it).
 */
export function measure(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: Request = {},
): Measures | null {
  const operation = getOperationAST(document, request.operationName ?? undefined);
  if (!operation) return null;
  const fragments = document.definitions.filter((d) => d.kind === Kind.FRAGMENT_DEFINITION);
  const runs: DocumentNode = visit(
    { kind: Kind.DOCUMENT, definitions: [operation, ...fragments] as DefinitionNode[] },
    { Field: (field) => (INTROSPECTION.has(field.name.value) ? null : undefined) },
  );
  const measured = runs.definitions[0] as OperationDefinitionNode;
  // armor's visitors measure (overLimits compares, so that the error can carry the numbers). They are
  // called directly: a whole validate() pass would cost several times more, on every request.
  let depth = 0;
  let aliases = 0;
  const depthRule = maxDepthRule({
    n: UNLIMITED,
    flattenFragments: true,
    onAccept: [(_, d) => (depth = d.n)],
  });
  const aliasRule = maxAliasesRule({ n: UNLIMITED, onAccept: [(_, d) => (aliases = d.n)] });
  const context = new ValidationContext(schema, runs, new TypeInfo(schema), () => {});
  depthRule(context).onOperationDefinitionEnter(measured);
  aliasRule(context).onOperationDefinitionEnter(measured);
  let cost: number | null;
  try {
    cost = complexityFromQuery(runs, {
      schema,
      ctx: request.context ?? {},
      variables: request.variables ?? {},
    }).complexity;
  } catch (error) {
    if (!(error instanceof GraphQLError)) throw error;
    cost = null;
  }
  return { depth, aliases, cost };
}

/** The QUERY_TOO_COMPLEX errors of a valid document (none when it is within every limit). */
export function overLimits(
  schema: GraphQLSchema,
  document: DocumentNode,
  request: Request,
  limits: GraphQLLimits,
): GraphQLError[] {
  const measured = measure(schema, document, request);
  if (!measured) return [];
  const errors: GraphQLError[] = [];
  if (measured.depth > limits.graphqlMaxDepth) {
    errors.push(queryTooComplex("depth", limits.graphqlMaxDepth, measured.depth));
  }
  if (measured.aliases > limits.graphqlMaxAliases) {
    errors.push(queryTooComplex("aliases", limits.graphqlMaxAliases, measured.aliases));
  }
  if (measured.cost !== null && measured.cost > limits.graphqlMaxCost) {
    errors.push(queryTooComplex("cost", limits.graphqlMaxCost, measured.cost));
  }
  return errors;
}

/** The request a yoga context describes: yoga's HTTP path and server.ts's onSubscribe both set `params`. */
function requestOf(context: unknown): Request {
  const params = (context as { params?: { operationName?: unknown; variables?: unknown } }).params;
  const operationName = typeof params?.operationName === "string" ? params.operationName : null;
  const variables =
    params?.variables && typeof params.variables === "object"
      ? (params.variables as Record<string, unknown>)
      : null;
  return { operationName, variables, context: context as object };
}

function isOurs(error: unknown): boolean {
  return error instanceof GraphQLError && error.extensions.code === QUERY_TOO_COMPLEX;
}

/** The envelop plugins for createYoga's `plugins`. */
export function graphqlLimits(limits: GraphQLLimits): Plugin[] {
  const tokens = maxTokensPlugin({
    n: limits.graphqlMaxTokens,
    propagateOnRejection: false,
    // Called at the first token over the limit; throwing stops the parser there.
    onReject: [
      () => {
        throw queryTooComplex("tokens", limits.graphqlMaxTokens, limits.graphqlMaxTokens + 1);
      },
    ],
  });
  const structure: Plugin = {
    onValidate:
      ({ context, params }) =>
      ({ result, setResult }) => {
        // Cost depends on the variables, but yoga caches validation results by document alone: it
        // may hand back what this hook added for another request. Measure again every time.
        const others = result.filter((error) => !isOurs(error));
        // Only a document that is otherwise valid is measured (the measures assume known fields).
        const ours =
          others.length === 0
            ? overLimits(params.schema, params.documentAST, requestOf(context), limits)
            : [];
        if (ours.length > 0 || others.length !== result.length) setResult([...others, ...ours]);
      },
  };
  return [tokens as Plugin, structure];
}
