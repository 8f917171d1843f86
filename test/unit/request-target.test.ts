/** src/http/request-target.ts: what a request must look like before any handler parses it. */
import type { IncomingMessage } from "node:http";
import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import {
  checkHost,
  checkMethod,
  checkRequest,
  checkUpgrade,
  MAX_TARGET_LENGTH,
  parseRequestTarget,
  type Refusal,
  refuseOnSocket,
  targetOf,
} from "../../src/http/request-target.ts";

function refusalOf(raw: string | undefined): Refusal {
  const parsed = parseRequestTarget(raw);
  if (parsed.ok) throw new Error(`expected ${JSON.stringify(raw)} to be refused`);
  return parsed.refusal;
}

function request(url: string, method = "GET", headers: Record<string, string> = {}): IncomingMessage {
  return { url, method, headers: { host: "127.0.0.1:4000", ...headers } } as unknown as IncomingMessage;
}

const HANDSHAKE = {
  connection: "Upgrade",
  upgrade: "websocket",
  "sec-websocket-version": "13",
  "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
};

describe("parseRequestTarget", () => {
  it.each([
    ["/", "/", ""],
    ["/graphql", "/graphql", ""],
    ["/healthz?verbose=1", "/healthz", "?verbose=1"],
    ["/graphql?query={models{id}}&variables=%7B%7D", "/graphql", "?query={models{id}}&variables=%7B%7D"],
    ["/models/mdl_AAAAAAAAAAAAAAAA/predict", "/models/mdl_AAAAAAAAAAAAAAAA/predict", ""],
    ["/models/a%2Fb/environments/st%C3%A9/predict", "/models/a%2Fb/environments/st%C3%A9/predict", ""],
    ["/a/", "/a/", ""],
    ["/a//b", "/a//b", ""],
    ["/x?", "/x", "?"],
    ["/x?a=b?c=/d", "/x", "?a=b?c=/d"],
    ["/~user/a.b-c_d!$&'()*+,;=:@", "/~user/a.b-c_d!$&'()*+,;=:@", ""],
  ])("takes %s", (raw, pathname, search) => {
    expect(parseRequestTarget(raw)).toEqual({ ok: true, value: { pathname, search } });
  });

  it.each([
    ["", "missing"],
    ["//", "single /"],
    ["//evil.example/graphql", "single /"],
    ["*", "single /"],
    ["http://evil/", "single /"],
    ["https://hangar/graphql", "single /"],
    ["evil:443", "single /"],
    ["graphql", "single /"],
    ["?x=1", "single /"],
  ])("refuses %j as not origin-form", (raw, message) => {
    expect(refusalOf(raw)).toMatchObject({ status: 400, error_code: "client_error" });
    expect(refusalOf(raw).error).toContain(message);
  });

  it("refuses a missing target", () => {
    expect(refusalOf(undefined)).toMatchObject({ status: 400, error_code: "client_error" });
  });

  it.each([
    "/a b",
    "/a\tb",
    "/a\u0000b",
    "/a\u007fb",
    "/a\\b",
    "/\\evil",
    '/a"b',
    "/a<b>",
    "/a{b}",
    "/a|b",
    "/a^b",
    "/a`b",
    "/a[b]",
    "/café",
    "/\u00ff",
    "/a#frag",
    "/x?a=1#frag",
    "/x?a b",
    "/x?a\u0001",
    "/x?caf\u00e9",
  ])("refuses raw characters that must be encoded: %j", (raw) => {
    expect(refusalOf(raw)).toMatchObject({ status: 400, error_code: "client_error" });
  });

  it.each(["/%", "/%Z", "/%ZZ", "/a%2", "/a%g0", "/models/%zz/predict", "/x?q=%", "/x?q=%4", "/x?q=%XY"])(
    "refuses the malformed escape in %s",
    (raw) => {
      expect(refusalOf(raw)).toMatchObject({ status: 400, error_code: "client_error" });
      expect(refusalOf(raw).error).toContain("percent-escape");
    },
  );

  it.each(["/%C0%AF", "/%FF", "/%ED%A0%80", "/models/%E2%82/predict", "/a%80b"])(
    "refuses an escape that is not UTF-8: %s",
    (raw) => {
      expect(refusalOf(raw)).toMatchObject({ status: 400, error_code: "client_error" });
      expect(refusalOf(raw).error).toContain("UTF-8");
    },
  );

  it("lets the query hold any well-formed escape (URLSearchParams decodes it leniently)", () => {
    expect(parseRequestTarget("/graphql?x=%FF%00")).toMatchObject({ ok: true });
  });

  it.each(["/%00", "/models/a%00b/predict", "/a%0A", "/a%0d%0aSet-Cookie:x", "/a%7F", "/a%1b"])(
    "refuses control characters hidden in an escape: %s",
    (raw) => {
      expect(refusalOf(raw)).toMatchObject({ status: 400, error_code: "client_error" });
      expect(refusalOf(raw).error).toContain("control");
    },
  );

  it.each(["/.", "/..", "/a/../graphql", "/a/./b", "/%2e%2e/x", "/%2E/x", "/.%2e/x", "/models/../predict"])(
    "refuses the dot segment in %s",
    (raw) => {
      expect(refusalOf(raw)).toMatchObject({ status: 400, error_code: "client_error" });
    },
  );

  it("takes names that merely contain dots", () => {
    expect(parseRequestTarget("/a.../...b/.c")).toMatchObject({ ok: true });
  });

  it("refuses a target over the maximum length with 414, and takes one at it", () => {
    const at = `/${"a".repeat(MAX_TARGET_LENGTH - 1)}`;
    expect(parseRequestTarget(at)).toMatchObject({ ok: true });
    expect(refusalOf(`${at}b`)).toMatchObject({ status: 414, error_code: "uri_too_long" });
    expect(refusalOf(`/x?${"%".repeat(MAX_TARGET_LENGTH)}`)).toMatchObject({ status: 414 });
  });

  it("never throws, whatever the bytes", () => {
    // Every single byte, and every byte after a "%", in the path and the query.
    for (let code = 0; code < 256; code++) {
      const c = String.fromCharCode(code);
      for (const raw of [`/${c}`, `/%${c}0`, `/%0${c}`, `/x?${c}`, `/x?%${c}${c}`, c, `${c}/`]) {
        const parsed = parseRequestTarget(raw);
        if (!parsed.ok) expect([400, 414]).toContain(parsed.refusal.status);
      }
    }
  });
});

describe("checkHost", () => {
  it.each([
    undefined,
    "",
    "localhost",
    "localhost:4000",
    "127.0.0.1:4000",
    "[::1]:4000",
    "[::1]",
    "hangar.example.com",
    "hangar_api:80",
  ])("takes %j", (host) => {
    expect(checkHost(host)).toBeNull();
  });

  it.each([
    "a b",
    "[",
    "[::1",
    "x:99999",
    "x:65536",
    "%",
    "a/b",
    "@",
    "a@b",
    "a?b",
    "a#b",
    "1.2.3.999",
    "::",
    "a:b:c",
    "a\\b",
    "café",
    "\u007f",
    "x:",
    "[zz]",
  ])("refuses %j with 400", (host) => {
    expect(checkHost(host)).toMatchObject({ status: 400, error_code: "client_error" });
  });
});

describe("checkMethod", () => {
  it.each(["GET", "POST", "OPTIONS"])("lets %s reach /graphql", (method) => {
    expect(checkMethod(method, "/graphql")).toBeNull();
  });

  it.each(["PUT", "DELETE", "PATCH", "HEAD", "TRACE", "PROPFIND", "get", undefined])(
    "answers %s on /graphql with 405 and an Allow header",
    (method) => {
      expect(checkMethod(method, "/graphql")).toEqual({
        status: 405,
        error: expect.stringContaining("GET, POST, OPTIONS"),
        error_code: "method_not_allowed",
        headers: { allow: "GET, POST, OPTIONS" },
      });
    },
  );

  it("leaves other paths to their handlers (the gateway has its own 405s, unknown paths 404)", () => {
    expect(checkMethod("DELETE", "/models/m/predict")).toBeNull();
    expect(checkMethod("PUT", "/healthz")).toBeNull();
    expect(checkMethod("BREW", "/nothing")).toBeNull();
  });
});

describe("checkRequest and targetOf", () => {
  it("passes a good request and remembers its target", () => {
    const req = request("/graphql?x=1", "POST");
    expect(checkRequest(req)).toEqual({ ok: true, value: { pathname: "/graphql", search: "?x=1" } });
    expect(targetOf(req)).toEqual({ pathname: "/graphql", search: "?x=1" });
  });

  it("refuses a bad target, then a bad Host, then a bad method", () => {
    expect(checkRequest(request("//", "PUT", { host: "a b" }))).toMatchObject({
      ok: false,
      refusal: { status: 400, error: expect.stringContaining("single /") },
    });
    expect(checkRequest(request("/graphql", "PUT", { host: "a b" }))).toMatchObject({
      ok: false,
      refusal: { status: 400, error: expect.stringContaining("Host") },
    });
    expect(checkRequest(request("/graphql", "PUT"))).toMatchObject({ ok: false, refusal: { status: 405 } });
  });

  it("targetOf parses an unchecked request, and gives an unparseable one a path that routes nowhere", () => {
    expect(targetOf(request("/models/x/predict"))).toEqual({ pathname: "/models/x/predict", search: "" });
    expect(targetOf(request("//"))).toEqual({ pathname: "", search: "" });
    expect(targetOf({ headers: {} } as IncomingMessage)).toEqual({ pathname: "", search: "" });
  });
});

describe("checkUpgrade", () => {
  it("takes a WebSocket handshake on /graphql and remembers its target", () => {
    const req = request("/graphql", "GET", HANDSHAKE);
    expect(checkUpgrade(req)).toBeNull();
    expect(targetOf(req).pathname).toBe("/graphql");
    expect(checkUpgrade(request("/graphql?x=1", "GET", { ...HANDSHAKE, upgrade: "WebSocket" }))).toBeNull();
  });

  it.each([
    ["bad target", request("//", "GET", HANDSHAKE), 400, "client_error"],
    ["absolute-form target", request("http://evil/graphql", "GET", HANDSHAKE), 400, "client_error"],
    ["malformed escape", request("/graphql%ZZ", "GET", HANDSHAKE), 400, "client_error"],
    ["bad Host", request("/graphql", "GET", { ...HANDSHAKE, host: "[" }), 400, "client_error"],
    ["wrong path", request("/", "GET", HANDSHAKE), 404, "not_found"],
    ["gateway path", request("/models/m/predict", "GET", HANDSHAKE), 404, "not_found"],
    ["upgrade to h2c", request("/graphql", "GET", { ...HANDSHAKE, upgrade: "h2c" }), 400, "client_error"],
    [
      "upgrade to a list",
      request("/graphql", "GET", { ...HANDSHAKE, upgrade: "websocket, h2c" }),
      400,
      "client_error",
    ],
    [
      "no Upgrade header",
      request("/graphql", "GET", { ...HANDSHAKE, upgrade: undefined as unknown as string }),
      400,
      "client_error",
    ],
    ["POST", request("/graphql", "POST", HANDSHAKE), 405, "method_not_allowed"],
    ["CONNECT-like method", request("/graphql", "PUT", HANDSHAKE), 405, "method_not_allowed"],
    [
      "version 8",
      request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-version": "8" }),
      426,
      "upgrade_required",
    ],
    [
      "no version",
      request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-version": undefined as unknown as string }),
      426,
      "upgrade_required",
    ],
    [
      "two versions",
      request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-version": "13, 13" }),
      426,
      "upgrade_required",
    ],
    [
      "no key",
      request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-key": undefined as unknown as string }),
      400,
      "client_error",
    ],
    [
      "short key",
      request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-key": "dGhlIHNhbXBsZQ==" }),
      400,
      "client_error",
    ],
    [
      "key that is not base64",
      request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-key": "!!!!!!!!!!!!!!!!!!!!!!==" }),
      400,
      "client_error",
    ],
    [
      "key without padding",
      request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQAA" }),
      400,
      "client_error",
    ],
  ])("refuses a %s", (_name, req, status, error_code) => {
    expect(checkUpgrade(req)).toMatchObject({ status, error_code });
  });

  it("says which version it speaks and which method it takes", () => {
    expect(
      checkUpgrade(request("/graphql", "GET", { ...HANDSHAKE, "sec-websocket-version": "7" }))?.headers,
    ).toEqual({ "sec-websocket-version": "13" });
    expect(checkUpgrade(request("/graphql", "POST", HANDSHAKE))?.headers).toEqual({ allow: "GET" });
  });
});

/** A socket stand-in that records what is written to it. */
class RecordingSocket extends Duplex {
  written = "";
  override _read(): void {}
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.written += chunk.toString("latin1");
    done();
  }
}

describe("refuseOnSocket", () => {
  it("writes a complete HTTP error response with a JSON body, then closes the socket", async () => {
    const socket = new RecordingSocket();
    const closed = new Promise((resolve) => socket.once("close", resolve));
    refuseOnSocket(socket, {
      status: 426,
      error: "Sec-WebSocket-Version must be 13",
      error_code: "upgrade_required",
      headers: { "sec-websocket-version": "13" },
    });
    await closed;
    expect(socket.destroyed).toBe(true);
    const [head, body] = socket.written.split("\r\n\r\n");
    const lines = (head ?? "").split("\r\n");
    expect(lines[0]).toBe("HTTP/1.1 426 Upgrade Required");
    expect(lines).toContain("Connection: close");
    expect(lines).toContain("Content-Type: application/json");
    expect(lines).toContain("sec-websocket-version: 13");
    expect(lines).toContain(`Content-Length: ${Buffer.byteLength(body ?? "")}`);
    expect(JSON.parse(body ?? "")).toEqual({
      error: "Sec-WebSocket-Version must be 13",
      error_code: "upgrade_required",
    });
  });

  it("only destroys a socket that can no longer be written", () => {
    const socket = new RecordingSocket();
    socket.end();
    refuseOnSocket(socket, { status: 400, error: "x", error_code: "client_error" });
    expect(socket.destroyed).toBe(true);
    expect(socket.written).toBe("");
  });

  it("survives the client resetting the socket (an 'error' with no other listener)", async () => {
    const socket = new RecordingSocket();
    refuseOnSocket(socket, { status: 404, error: "x", error_code: "not_found" });
    // With no listener this emit would throw; refuseOnSocket must have added one.
    expect(() =>
      socket.emit("error", Object.assign(new Error("reset"), { code: "ECONNRESET" })),
    ).not.toThrow();
    expect(socket.destroyed).toBe(true);
  });
});
