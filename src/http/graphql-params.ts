import { GraphQLError } from "graphql";
import { createGraphQLError, type Plugin } from "graphql-yoga";

/** A client that went away (a DOMException, which need not be an Error here). */
function isAbort(error: unknown): boolean {
  const name = typeof error === "object" && error !== null ? (error as { name?: unknown }).name : undefined;
  return name === "AbortError" || name === "TimeoutError";
}

/**
 * Yoga's request parsers throw plain errors on some hostile input (JSON.parse of
 * `variables` or `extensions` in a GET query string or a form body, a multipart
 * `map` whose entries are not lists of strings), which yoga answers as 500. Any
 * such failure is a fault in the request: this makes it a 400 BAD_REQUEST.
 * Errors yoga already classified (GraphQLErrors with their status) and a client's
 * abort pass through. Must come after every plugin that picks a request parser.
 */
export function useMalformedParamsAsBadRequest(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      const parse = requestParser;
      setRequestParser(async (request) => {
        try {
          return await parse(request);
        } catch (error) {
          if (error instanceof GraphQLError || isAbort(error)) throw error;
          throw createGraphQLError("the request's GraphQL parameters are malformed", {
            extensions: { http: { status: 400 }, code: "BAD_REQUEST" },
          });
        }
      });
    },
  };
}
