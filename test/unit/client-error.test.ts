/**
 * src/http/client-error.ts on a real node:http server: a request the parser
 * gives up on is answered after the answers owed before it, in order.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Duplex } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  answerClientError,
  clientErrorRefusal,
  isClientGone,
  pipelinedUpgrade,
  refuseInTurn,
  trackExchange,
} from "../../src/http/client-error.ts";
import { checkRequest, checkUpgrade, sendRefusal } from "../../src/http/request-target.ts";
import { rawExchange } from "../support/raw-http.ts";
import { waitFor } from "../support/wait.ts";

let server: Server;
let port: number;
/** What isClientGone said about the errors /gone's bodies ended with. */
const gone: boolean[] = [];

beforeAll(async () => {
  server = createServer({ connectionsCheckingInterval: 50 }, (req, res) => {
    trackExchange(req, res);
    const checked = checkRequest(req);
    if (!checked.ok) {
      req.resume();
      return sendRefusal(res, checked.refusal);
    }
    const { pathname } = checked.value;
    if (pathname === "/early") return res.end("early");
    if (pathname === "/gone") {
      req.on("error", (error) => gone.push(isClientGone(error, req), isClientGone(new Error("bug"), req)));
      return req.resume();
    }
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString();
      // /slow answers after the requests pipelined behind it have been parsed.
      setTimeout(() => res.end(`${pathname}${body ? ` ${body}` : ""}`), pathname === "/slow" ? 150 : 0);
    });
  });
  server.headersTimeout = 300;
  server.requestTimeout = 300;
  server.on("clientError", answerClientError);
  // As src/server.ts wires them; a handshake that passes is "accepted" with a bare 101.
  server.on("upgrade", (req, socket: Duplex) => {
    const refused = checkUpgrade(req) ?? pipelinedUpgrade(socket);
    if (refused) return refuseInTurn(socket, refused);
    socket.end("HTTP/1.1 101 Switching Protocols\r\nConnection: close\r\n\r\n");
  });
  server.on("connect", (_req, socket: Duplex) =>
    refuseInTurn(socket, { status: 400, error: "not a proxy", error_code: "client_error" }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
const statuses = (x: { responses: { status: number }[] }) => x.responses.map((r) => r.status);
const bodies = (x: { responses: { body: Buffer }[] }) => x.responses.map((r) => r.body.toString());

describe("clientError", () => {
  it("answers a lone unreadable request with a JSON 400 and closes", async () => {
    const got = await rawExchange(port, ["\u0000\u0001garbage\r\n\r\n"]);
    expect(statuses(got)).toEqual([400]);
    expect(got.responses[0]?.headers.connection).toBe("close");
    expect(JSON.parse(bodies(got)[0] ?? "")).toMatchObject({ error_code: "client_error" });
    expect(got.closed).toBe(true);
  });

  it("calls an unknown method what it is", async () => {
    const got = await rawExchange(port, ["BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n"]);
    expect(statuses(got)).toEqual([400]);
    expect(JSON.parse(bodies(got)[0] ?? "")).toEqual({
      error: "unknown HTTP method",
      error_code: "client_error",
    });
  });

  it("sends the answers of earlier pipelined requests first, in order, then the 400", async () => {
    const got = await rawExchange(port, [`${get("/slow")}${get("/fast")}BAD\r\n\r\n`]);
    expect(statuses(got)).toEqual([200, 200, 400]);
    expect(bodies(got).slice(0, 2)).toEqual(["/slow", "/fast"]);
    expect(got.closed).toBe(true);
    expect(got.rest.length).toBe(0);
  });

  it("answers oversized headers with 431 after the answer owed before them", async () => {
    const flood = `GET /x HTTP/1.1\r\nHost: x\r\nX-Flood: ${"a".repeat(20_000)}\r\n\r\n`;
    const got = await rawExchange(port, [get("/slow") + flood]);
    expect(statuses(got)).toEqual([200, 431]);
    expect(JSON.parse(bodies(got)[1] ?? "")).toMatchObject({ error_code: "headers_too_large" });
  });

  it("answers a request whose chunked body breaks with 400 in its own place", async () => {
    const broken = "POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\nZZ\r\n";
    const got = await rawExchange(port, [get("/slow") + broken]);
    expect(statuses(got)).toEqual([200, 400]);
    expect(bodies(got)[0]).toBe("/slow");
    expect(got.closed).toBe(true);
  });

  it("adds no second answer for a request already answered before its body broke", async () => {
    const broken = "POST /early HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    const got = await rawExchange(port, [broken, "ZZ\r\n"], { gapMs: 100 });
    expect(statuses(got)).toEqual([200]);
    expect(bodies(got)).toEqual(["early"]);
    expect(got.closed).toBe(true);
    expect(got.rest.length).toBe(0);
  });

  it("answers a request that does not arrive in time with 408", async () => {
    const got = await rawExchange(port, ["GET /x HTTP/1.1\r\nHost: x\r\n"]);
    expect(statuses(got)).toEqual([408]);
    expect(got.closed).toBe(true);
  });

  it("keeps the connection for a refused target (the message itself was readable)", async () => {
    const got = await rawExchange(port, [get("//") + get("/fast")], { expect: 2 });
    expect(statuses(got)).toEqual([400, 200]);
    expect(bodies(got)[1]).toBe("/fast");
  });

  it("refuses a CONNECT after the answers owed before it", async () => {
    const got = await rawExchange(port, [
      `${get("/slow")}CONNECT evil:443 HTTP/1.1\r\nHost: evil:443\r\n\r\n`,
    ]);
    expect(statuses(got)).toEqual([200, 400]);
    expect(bodies(got)).toEqual([
      "/slow",
      JSON.stringify({ error: "not a proxy", error_code: "client_error" }),
    ]);
    expect(got.closed).toBe(true);
  });

  const handshake =
    "GET /graphql HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";

  it("takes a handshake on a connection whose earlier answers have all gone out", async () => {
    const got = await rawExchange(port, [get("/fast"), handshake], { gapMs: 100 });
    expect(statuses(got)).toEqual([200, 101]);
  });

  it("refuses a handshake pipelined behind unanswered requests, after their answers", async () => {
    const got = await rawExchange(port, [get("/slow") + handshake]);
    expect(statuses(got)).toEqual([200, 400]);
    expect(bodies(got)[0]).toBe("/slow");
    expect(JSON.parse(bodies(got)[1] ?? "").error).toContain("unanswered requests");
  });

  it("refuses a bad handshake in its turn too", async () => {
    const got = await rawExchange(port, [get("/slow") + handshake.replace("/graphql", "/elsewhere")]);
    expect(statuses(got)).toEqual([200, 404]);
  });

  it("tells a client that cut its body off from a handler's own error", async () => {
    const cut = "POST /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789";
    // The client closes its connection after ten of the hundred bytes it announced.
    void rawExchange(port, [cut], { endAfter: 0, deadlineMs: 1_000 });
    await waitFor(() => gone.length === 2, { what: "the body to end in an error" });
    expect(gone).toEqual([true, false]);
  });

  it("ends a reset socket without writing to it", () => {
    const written: Buffer[] = [];
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        written.push(chunk);
        done();
      },
    });
    answerClientError(Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET" }), socket);
    expect(socket.destroyed).toBe(true);
    expect(written).toEqual([]);
  });

  it("maps parser error codes to Node's statuses", () => {
    expect(clientErrorRefusal("HPE_HEADER_OVERFLOW").status).toBe(431);
    expect(clientErrorRefusal("HPE_CHUNK_EXTENSIONS_OVERFLOW").status).toBe(413);
    expect(clientErrorRefusal("ERR_HTTP_REQUEST_TIMEOUT").status).toBe(408);
    expect(clientErrorRefusal("HPE_INVALID_CHUNK_SIZE").status).toBe(400);
    expect(clientErrorRefusal(undefined).status).toBe(400);
  });
});
