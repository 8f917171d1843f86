import { GraphQLError, type Source } from "graphql";
import type { Plugin } from "graphql-yoga";

/**
 * graphql-js parses recursively: a document nested about 2,000 brackets deep
 * overflows the stack (a RangeError: a 500 over HTTP, an internal-error close on
 * a WebSocket) well within the token limit, before the depth limit is measured.
 * So brackets are counted before parsing. Far above any document the depth limit
 * lets through (GraphiQL's introspection query nests about ten).
 */
export const MAX_DOCUMENT_NESTING = 128;

/** Index of the `"""` that ends a block string opened before `from`, or -1. */
function blockStringEnd(source: string, from: number): number {
  for (let i = from; i < source.length; i++) {
    if (source.startsWith('\\"""', i)) i += 3;
    else if (source.startsWith('"""', i)) return i;
  }
  return -1;
}

/**
 * The deepest nesting of `{`, `(` and `[` in a GraphQL document, outside strings
 * and comments. Stops counting once past `limit`.
 */
export function documentNesting(source: string, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === "#") {
      while (i + 1 < source.length && source[i + 1] !== "\n" && source[i + 1] !== "\r") i++;
    } else if (c === '"') {
      if (source.startsWith('"""', i)) {
        const end = blockStringEnd(source, i + 3);
        i = end < 0 ? source.length : end + 2;
      } else {
        for (i++; i < source.length && source[i] !== '"' && source[i] !== "\n"; i++) {
          if (source[i] === "\\") i++;
        }
      }
    } else if (c === "{" || c === "(" || c === "[") {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if ((c === "}" || c === ")" || c === "]") && depth > 0) {
      depth--;
    }
  }
  return deepest;
}

/** Refuses a document nested deeper than `max` before it is parsed, over HTTP and WebSocket alike. */
export function useDocumentNestingLimit(max = MAX_DOCUMENT_NESTING): Plugin {
  return {
    onParse({ params }) {
      const source = params.source as string | Source;
      const body = typeof source === "string" ? source : source.body;
      const found = documentNesting(body, max);
      if (found <= max) return;
      throw new GraphQLError(
        `document nesting is over the limit of ${max} brackets (checked before parsing; ` +
          "the query depth limit is HANGAR_GRAPHQL_MAX_DEPTH)",
        { extensions: { code: "QUERY_TOO_COMPLEX", limit: "depth", max, http: { spec: true, status: 400 } } },
      );
    },
  };
}
