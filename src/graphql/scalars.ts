import { GraphQLError, Kind } from "graphql";
import { builder } from "./builder.ts";

builder.scalarType("DateTime", {
  description: "An ISO 8601 date-time string",
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(String(value)).toISOString()),
  parseValue: (value) => {
    const date = new Date(String(value));
    if (typeof value !== "string" || Number.isNaN(date.getTime())) {
      throw new GraphQLError(`DateTime must be an ISO 8601 string, got ${JSON.stringify(value)}`);
    }
    return date;
  },
  parseLiteral: (ast) => {
    const date = ast.kind === Kind.STRING ? new Date(ast.value) : new Date(Number.NaN);
    if (Number.isNaN(date.getTime())) throw new GraphQLError("DateTime must be an ISO 8601 string");
    return date;
  },
});

builder.scalarType("File", {
  description: "A file sent with the GraphQL multipart request spec",
  serialize: () => {
    throw new GraphQLError("File is an input-only scalar");
  },
  parseValue: (value) => {
    // yoga hands over its own File implementation, so check the shape, not the class.
    const file = value as Partial<File> | null;
    if (!file || typeof file !== "object" || typeof file.stream !== "function") {
      throw new GraphQLError("expected an uploaded file (multipart request)");
    }
    return file as File;
  },
});
