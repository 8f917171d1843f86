import { describe, expect, it } from "vitest";
import { loadConfig, parseCorsOrigins } from "../../src/config.ts";
import {
  corsHeaders,
  isApiPath,
  listensOnLoopback,
  OriginPolicy,
  ownOrigins,
  preflightHeaders,
} from "../../src/http/origin.ts";

const LOCAL = { publicUrl: "http://127.0.0.1:4000", host: "127.0.0.1", port: 4000, corsOrigins: [] };

describe("own origins", () => {
  it("are the public URL's origin, plus the loopback names when Hangar listens on loopback", () => {
    expect(ownOrigins(LOCAL)).toEqual([
      "http://127.0.0.1:4000",
      "http://localhost:4000",
      "http://[::1]:4000",
    ]);
    expect(ownOrigins({ publicUrl: "https://hangar.example.com/", host: "10.0.0.5", port: 4000 })).toEqual([
      "https://hangar.example.com",
    ]);
    // Behind a proxy on loopback: the public origin and the local names of the listening port.
    expect(ownOrigins({ publicUrl: "https://hangar.example.com", host: "::1", port: 8080 })).toEqual([
      "https://hangar.example.com",
      "http://localhost:8080",
      "http://127.0.0.1:8080",
      "http://[::1]:8080",
    ]);
  });

  it.each([
    ["127.0.0.1", true],
    ["127.1.2.3", true],
    ["localhost", true],
    ["::1", true],
    ["[::1]", true],
    ["0.0.0.0", true],
    ["::", true],
    ["10.0.0.5", false],
    ["hangar.example.com", false],
    ["127.0.0.1.evil.example", false],
  ])("listensOnLoopback(%s) is %s", (host, expected) => {
    expect(listensOnLoopback(host)).toBe(expected);
  });
});

describe("OriginPolicy", () => {
  const policy = new OriginPolicy({
    ...LOCAL,
    corsOrigins: ["https://app.example.com", "http://127.0.0.1:4000"],
  });

  it("classifies exactly: no header, own, listed, and everything else foreign", () => {
    expect(policy.classify(undefined)).toBe("none");
    expect(policy.classify("http://127.0.0.1:4000")).toBe("own");
    expect(policy.classify("http://localhost:4000")).toBe("own");
    expect(policy.classify("https://app.example.com")).toBe("listed");
    for (const other of [
      "null",
      "",
      "http://127.0.0.1:4001",
      "https://127.0.0.1:4000",
      "http://127.0.0.1:4000/",
      "HTTP://127.0.0.1:4000",
      "https://app.example.com.evil.example",
      // A DNS-rebound name reaching 127.0.0.1:4000 is still another origin.
      "http://evil.example:4000",
      "http://127.0.0.1:4000, http://127.0.0.1:4000",
    ]) {
      expect(policy.classify(other), other).toBe("foreign");
    }
    expect(policy.classify(["http://127.0.0.1:4000"])).toBe("foreign");
    // An own origin that is also listed stays own.
    expect(policy.listed.has("http://127.0.0.1:4000")).toBe(false);
  });

  it("lets the session count only without an Origin or from Hangar's own", () => {
    expect(policy.decide("GET", "/graphql", undefined)).toMatchObject({ action: "continue", session: true });
    expect(policy.decide("POST", "/graphql", "http://localhost:4000")).toMatchObject({ session: true });
    expect(policy.decide("POST", "/graphql", "https://app.example.com")).toMatchObject({
      action: "continue",
      session: false,
    });
    expect(policy.decide("GET", "/graphql", "http://other.example")).toMatchObject({
      action: "continue",
      session: false,
      headers: { vary: "Origin" },
    });
    expect(policy.decide("GET", "/", "http://other.example")).toMatchObject({ session: false, headers: {} });
  });

  it("refuses state-changing requests from other origins, on every path", () => {
    for (const method of ["POST", "PUT", "DELETE", "PATCH"]) {
      for (const path of ["/graphql", "/models/mdl_x/predict", "/sign-in", "/sign-out", "/anything"]) {
        expect(policy.decide(method, path, "http://evil.example").action, `${method} ${path}`).toBe("refuse");
        expect(policy.decide(method, path, "null").action).toBe("refuse");
      }
    }
    expect(policy.decide("GET", "/graphql", "http://evil.example").action).toBe("continue");
    expect(policy.decide("HEAD", "/", "http://evil.example").action).toBe("continue");
  });

  it("lets a listed origin call the API, never Hangar's own pages", () => {
    const api = policy.decide("POST", "/graphql", "https://app.example.com");
    expect(api).toEqual({
      action: "continue",
      kind: "listed",
      session: false,
      headers: corsHeaders("https://app.example.com"),
    });
    expect(policy.decide("POST", "/models/mdl_x/predict", "https://app.example.com").action).toBe("continue");
    expect(policy.decide("POST", "/sign-in", "https://app.example.com").action).toBe("refuse");
    expect(policy.decide("POST", "/sign-out", "https://app.example.com").action).toBe("refuse");
  });

  it("answers preflights on the API: 204 with CORS headers when listed, else 403", () => {
    expect(policy.decide("OPTIONS", "/graphql", "https://app.example.com")).toEqual({
      action: "preflight",
      headers: preflightHeaders("https://app.example.com"),
    });
    expect(policy.decide("OPTIONS", "/models/mdl_x/predict", "https://app.example.com").action).toBe(
      "preflight",
    );
    expect(policy.decide("OPTIONS", "/graphql", "http://evil.example").action).toBe("refuse");
    expect(policy.decide("OPTIONS", "/graphql", "http://127.0.0.1:4000").action).toBe("refuse");
    // No Origin: not a preflight, just "which methods?".
    expect(policy.decide("OPTIONS", "/graphql", undefined)).toEqual({
      action: "preflight",
      headers: { allow: "GET, POST, OPTIONS" },
    });
  });

  it("lets WebSockets open from own pages (with the session) and listed ones (key only)", () => {
    expect(policy.decideUpgrade(undefined)).toEqual({ allowed: true, session: true });
    expect(policy.decideUpgrade("http://[::1]:4000")).toEqual({ allowed: true, session: true });
    expect(policy.decideUpgrade("https://app.example.com")).toEqual({ allowed: true, session: false });
    expect(policy.decideUpgrade("http://evil.example")).toEqual({ allowed: false, session: false });
    expect(policy.decideUpgrade("null")).toEqual({ allowed: false, session: false });
  });
});

describe("CORS headers", () => {
  it("name the origin, never allow credentials, and vary by Origin", () => {
    const headers = preflightHeaders("https://app.example.com");
    expect(headers).toMatchObject({
      "access-control-allow-origin": "https://app.example.com",
      "access-control-allow-methods": "GET, POST, OPTIONS",
      "access-control-allow-headers": "authorization, content-type, graphql-require-preflight",
      vary: "Origin",
    });
    expect(Object.keys(headers)).not.toContain("access-control-allow-credentials");
    expect(Object.keys(corsHeaders("https://app.example.com"))).not.toContain(
      "access-control-allow-credentials",
    );
  });

  it("cover the API paths only", () => {
    expect(isApiPath("/graphql")).toBe(true);
    expect(isApiPath("/models/mdl_x/predict")).toBe(true);
    expect(isApiPath("/")).toBe(false);
    expect(isApiPath("/sign-in")).toBe(false);
    expect(isApiPath("/graphql/x")).toBe(false);
  });
});

describe("HANGAR_CORS_ORIGINS", () => {
  it("takes comma-separated origins", () => {
    expect(parseCorsOrigins(undefined)).toEqual([]);
    expect(parseCorsOrigins(" ")).toEqual([]);
    expect(
      parseCorsOrigins("https://app.example.com, http://localhost:5173/,https://APP.example.com"),
    ).toEqual(["https://app.example.com", "http://localhost:5173"]);
    expect(parseCorsOrigins("https://app.example.com:443")).toEqual(["https://app.example.com"]);
    expect(loadConfig({ HANGAR_CORS_ORIGINS: "http://[::1]:3000" }).corsOrigins).toEqual([
      "http://[::1]:3000",
    ]);
  });

  it.each([
    "*",
    "null",
    "app.example.com",
    "https://app.example.com/path",
    "https://app.example.com?x=1",
    "https://user@app.example.com",
    "ftp://app.example.com",
    "file:///etc",
  ])("stops at %s, which is not an origin", (value) => {
    expect(() => parseCorsOrigins(value)).toThrow(/HANGAR_CORS_ORIGINS holds .* which is not an origin/);
  });
});
