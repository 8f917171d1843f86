import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { parseCookie, stringifySetCookie } from "cookie";

/**
 * The browser session's cookie (API.md section 7): scripts cannot read it
 * (HttpOnly), other sites cannot make the browser send it (SameSite=Strict),
 * and its name is this Hangar's own, because cookies do not tell ports apart:
 * two Hangars on one host would otherwise overwrite each other's session.
 */
export class SessionCookie {
  readonly name: string;

  constructor(
    installationId: string,
    /** Set when the public URL is https: the cookie never travels in clear text. */
    private readonly secure: boolean,
  ) {
    const suffix = createHash("sha256").update(installationId).digest("hex").slice(0, 10);
    // __Host-: the browser keeps it only when Secure, Path=/ and without Domain, so no
    // other host (a sibling subdomain) can plant one. Browsers require https for it.
    this.name = `${secure ? "__Host-" : ""}hangar_session_${suffix}`;
  }

  static forPublicUrl(installationId: string, publicUrl: string): SessionCookie {
    return new SessionCookie(installationId, new URL(publicUrl).protocol === "https:");
  }

  /** The session token the request carries, if any (no check that it is good). */
  token(req: IncomingMessage): string | null {
    const header = req.headers.cookie;
    if (!header) return null;
    const value = parseCookie(header)[this.name];
    // Tokens are base64url (sessions.ts); anything else is not one of ours.
    return value && /^[A-Za-z0-9_-]{16,128}$/.test(value) ? value : null;
  }

  /** The Set-Cookie value that starts a session lasting until `expiresAt`. */
  set(token: string, expiresAt: Date, now: Date = new Date()): string {
    const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - now.getTime()) / 1000));
    return stringifySetCookie({
      name: this.name,
      value: token,
      httpOnly: true,
      sameSite: "strict",
      secure: this.secure,
      path: "/",
      maxAge,
    });
  }

  /** The Set-Cookie value that makes the browser drop the cookie. */
  clear(): string {
    return stringifySetCookie({
      name: this.name,
      value: "",
      httpOnly: true,
      sameSite: "strict",
      secure: this.secure,
      path: "/",
      maxAge: 0,
      expires: new Date(0),
    });
  }
}
