import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";

/**
 * The request id (API.md section 11): every gateway and /graphql answer carries one in
 * `x-request-id`, the client's when it is well-formed, else a new one; the same id goes to the replica
 * (and to the member a request is handed to) and into the log lines of that request.
 */
export const REQUEST_ID_HEADER = "x-request-id";
const WELL_FORMED = /^[A-Za-z0-9._-]{1,128}$/;
const REQUEST_ID = Symbol("hangar.requestId");
type WithRequestId = ServerResponse & { [REQUEST_ID]?: string };

/** Gives the request its id (the client's if well-formed) and keeps it with its response. */
export function assignRequestId(req: IncomingMessage, res: ServerResponse): string {
  const given = req.headers[REQUEST_ID_HEADER];
  const id = typeof given === "string" && WELL_FORMED.test(given) ? given : randomUUID();
  (res as WithRequestId)[REQUEST_ID] = id;
  return id;
}

/** The id assignRequestId gave the response's request, if any. */
export function requestIdOf(res: ServerResponse): string | undefined {
  return (res as WithRequestId)[REQUEST_ID];
}
