import type { IncomingMessage } from "node:http";
import { parseSetCookie } from "cookie";
import { describe, expect, it } from "vitest";
import { SessionCookie } from "../../src/http/session-cookie.ts";

function request(cookie: string | undefined): IncomingMessage {
  return { headers: cookie === undefined ? {} : { cookie } } as IncomingMessage;
}

describe("SessionCookie", () => {
  it("is named for the installation, so Hangars on one host do not share a session", () => {
    const a = new SessionCookie("installation-a", false);
    expect(a.name).toMatch(/^hangar_session_[0-9a-f]{10}$/);
    expect(new SessionCookie("installation-a", false).name).toBe(a.name);
    expect(new SessionCookie("installation-b", false).name).not.toBe(a.name);
  });

  it("sets an HttpOnly, SameSite=Strict cookie on / that ends with the session", () => {
    const cookie = new SessionCookie("i", false);
    const now = new Date("2026-01-01T00:00:00Z");
    const set = parseSetCookie(
      cookie.set("tok_abcdefghijklmnop", new Date(now.getTime() + 12 * 3600_000), now),
    );
    expect(set).toMatchObject({
      name: cookie.name,
      value: "tok_abcdefghijklmnop",
      httpOnly: true,
      sameSite: "strict",
      path: "/",
      maxAge: 12 * 3600,
    });
    expect(set.secure).toBeFalsy();
    expect(set.domain).toBeUndefined();
    // A session that has already ended gets a cookie that ends at once.
    expect(parseSetCookie(cookie.set("tok_abcdefghijklmnop", new Date(0), now)).maxAge).toBe(0);
  });

  it("is Secure, with the __Host- prefix, when the public URL is https", () => {
    const cookie = SessionCookie.forPublicUrl("i", "https://hangar.example.com");
    expect(cookie.name).toMatch(/^__Host-hangar_session_[0-9a-f]{10}$/);
    expect(parseSetCookie(cookie.set("tok_abcdefghijklmnop", new Date(Date.now() + 60_000)))).toMatchObject({
      secure: true,
      path: "/",
    });
    expect(SessionCookie.forPublicUrl("i", "http://127.0.0.1:4000").name).toMatch(/^hangar_session_/);
  });

  it("clears with the same name and flags and Max-Age=0", () => {
    const cookie = new SessionCookie("i", false);
    expect(parseSetCookie(cookie.clear())).toMatchObject({
      name: cookie.name,
      value: "",
      maxAge: 0,
      httpOnly: true,
      sameSite: "strict",
      path: "/",
    });
  });

  it("reads its own cookie's token, and nothing that cannot be a token", () => {
    const cookie = new SessionCookie("i", false);
    const token = "AbC_-0123456789abcdefXYZ";
    expect(cookie.token(request(`other=1; ${cookie.name}=${token}; x=y`))).toBe(token);
    expect(cookie.token(request(undefined))).toBeNull();
    expect(cookie.token(request("hangar_session_0000000000=AbC_-0123456789abcdefXYZ"))).toBeNull();
    expect(cookie.token(request(`${cookie.name}=short`))).toBeNull();
    expect(cookie.token(request(`${cookie.name}=${"a".repeat(20)}%00`))).toBeNull();
  });
});
