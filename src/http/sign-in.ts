import type { IncomingMessage, ServerResponse } from "node:http";
import { RateLimiterMemory, RateLimiterRes } from "rate-limiter-flexible";
import type { Access } from "../domain/access.ts";
import type { PrismaClient } from "../generated/prisma/client.ts";
import type { Logger } from "../logger.ts";
import { endSession, redeemSignInLink, signInWithKey } from "../services/sessions.ts";
import type { Credentials } from "./credentials.ts";
import { homePage, sendPage, signInPage } from "./pages.ts";
import type { SessionCookie } from "./session-cookie.ts";

/** Failed sign-ins allowed per client address and window (API.md section 7). */
export const MAX_FAILED_SIGN_INS = 10;
const FAILURE_WINDOW_S = 60;
/** The form holds one field; a key is well under a hundred bytes. */
const MAX_FORM_BYTES = 4096;

const LINK_PATH = /^\/sign-in\/([A-Za-z0-9_-]{16,128})$/;

/** The paths this module answers. */
export function isSignInPath(pathname: string): boolean {
  return (
    pathname === "/" ||
    pathname === "/sign-in" ||
    pathname === "/sign-out" ||
    pathname.startsWith("/sign-in/")
  );
}

/** A 303: after a POST the browser follows with a GET, and the URL bar shows the target. */
export function redirect(res: ServerResponse, location: string, headers: Record<string, string> = {}): void {
  res.writeHead(303, { location, "cache-control": "no-store", "content-length": 0, ...headers });
  res.end();
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  const payload = JSON.stringify({ error: `this path takes ${allow}`, error_code: "method_not_allowed" });
  res.writeHead(405, {
    allow,
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}

/** The address failures are counted by: the peer's (a proxy in front of Hangar counts as one client). */
function clientAddress(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "unknown";
}

class FormTooLarge extends Error {}

/**
 * The urlencoded body of a small form. Past MAX_FORM_BYTES it is refused at
 * once; the rest is read and dropped while the 413 (with connection: close) goes out.
 */
function readForm(req: IncomingMessage): Promise<URLSearchParams> {
  if (Number(req.headers["content-length"] ?? 0) > MAX_FORM_BYTES) return Promise.reject(new FormTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    req.on("data", (chunk: Buffer) => {
      if (settled) return;
      size += chunk.length;
      if (size <= MAX_FORM_BYTES) return void chunks.push(chunk);
      settled = true;
      reject(new FormTooLarge());
    });
    req.once("end", () => {
      if (settled) return;
      settled = true;
      resolve(new URLSearchParams(Buffer.concat(chunks).toString("utf8")));
    });
    req.once("error", (error) => {
      if (settled) return;
      settled = true;
      reject(error);
    });
  });
}

/**
 * Browser sign-in (API.md section 7): the sign-in page and form, the one-use
 * link printed at start, sign-out, and the home page `/` (until the dashboard
 * takes it over). Sessions live in the database (services/sessions.ts); the
 * browser holds only the token, in an HttpOnly cookie (session-cookie.ts).
 */
export class BrowserSignIn {
  /** Counts failures only: a success gives its point back. One process's count (see README). */
  private readonly failures = new RateLimiterMemory({
    points: MAX_FAILED_SIGN_INS,
    duration: FAILURE_WINDOW_S,
  });

  constructor(
    private readonly prisma: PrismaClient,
    private readonly credentials: Credentials,
    readonly cookie: SessionCookie,
    private readonly log: Logger,
  ) {}

  /**
   * The session token a request may use: its cookie, when the Origin rules let
   * the session count (http/origin.ts). Checked by `access`, not here.
   */
  token(req: IncomingMessage, sessionCounts: boolean): string | null {
    return sessionCounts ? this.cookie.token(req) : null;
  }

  /** What the request's session allows, or null (none, ended, or not counted here). */
  async access(req: IncomingMessage, sessionCounts: boolean): Promise<Access | null> {
    const token = this.token(req, sessionCounts);
    return token ? this.credentials.session(token) : null;
  }

  /**
   * A request's credential on /graphql: its bearer key when it has an
   * Authorization header (a wrong one is not rescued by a cookie), else its session.
   */
  async requestAccess(req: IncomingMessage, sessionCounts: boolean): Promise<Access | null> {
    if (req.headers.authorization !== undefined) return this.credentials.bearer(req.headers.authorization);
    return this.access(req, sessionCounts);
  }

  /** Answers `/`, `/sign-in`, `/sign-in/<token>` and `/sign-out`. */
  async handle(
    req: IncomingMessage,
    res: ServerResponse,
    pathname: string,
    sessionCounts: boolean,
  ): Promise<void> {
    const method = req.method ?? "GET";
    if (pathname === "/") {
      req.resume();
      if (method !== "GET" && method !== "HEAD") return methodNotAllowed(res, "GET, HEAD");
      return this.home(req, res, sessionCounts);
    }
    if (pathname === "/sign-in") {
      if (method === "POST") return this.signInWithForm(req, res, sessionCounts);
      req.resume();
      if (method !== "GET" && method !== "HEAD") return methodNotAllowed(res, "GET, HEAD, POST");
      const viewer = await this.access(req, sessionCounts);
      return sendPage(res, 200, signInPage({ viewer }));
    }
    if (pathname === "/sign-out") {
      req.resume();
      // A GET (a typed URL) changes nothing; the page there has the button.
      if (method === "GET" || method === "HEAD") return redirect(res, "/sign-in");
      if (method !== "POST") return methodNotAllowed(res, "POST");
      return this.signOut(req, res, sessionCounts);
    }
    req.resume();
    // Only a GET uses the link: a HEAD (a link preview) must not spend it.
    if (method !== "GET") return methodNotAllowed(res, "GET");
    return this.signInWithLink(req, res, LINK_PATH.exec(pathname)?.[1] ?? null, sessionCounts);
  }

  private async home(req: IncomingMessage, res: ServerResponse, sessionCounts: boolean): Promise<void> {
    const access = await this.access(req, sessionCounts);
    if (!access) {
      // A cookie whose session has ended is dropped on the way.
      const stale = this.token(req, sessionCounts) ? { "set-cookie": this.cookie.clear() } : undefined;
      return redirect(res, "/sign-in", stale);
    }
    sendPage(res, 200, homePage(access));
  }

  private async signInWithForm(
    req: IncomingMessage,
    res: ServerResponse,
    sessionCounts: boolean,
  ): Promise<void> {
    const type = (req.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
    if (type !== "application/x-www-form-urlencoded") {
      req.resume();
      return sendPage(
        res,
        415,
        signInPage({ error: "Send the sign-in form as application/x-www-form-urlencoded." }),
      );
    }
    let form: URLSearchParams;
    try {
      form = await readForm(req);
    } catch (error) {
      if (!(error instanceof FormTooLarge)) throw error;
      req.resume();
      return sendPage(res, 413, signInPage({ error: "That form is too large to be a sign-in." }), {
        connection: "close",
      });
    }
    const secret = (form.get("api_key") ?? "").trim();
    if (secret === "") return sendPage(res, 400, signInPage({ error: "Enter an API key." }));
    if (!(await this.takeAttempt(req, res))) return;
    const result = await signInWithKey(this.prisma, secret);
    if (!result.ok) {
      // The key is never echoed: not in the page, not in the log.
      if (result.reason === "role") {
        this.log.info({ address: clientAddress(req) }, "sign-in refused: an INFERENCE key");
        return sendPage(
          res,
          403,
          signInPage({
            error:
              "INFERENCE keys cannot sign in: they only call models through the gateway. Use an ADMIN, DEPLOYER or VIEWER key.",
          }),
        );
      }
      this.log.info({ address: clientAddress(req) }, "sign-in refused: a wrong key");
      return sendPage(res, 401, signInPage({ error: "That API key is wrong, revoked or expired." }));
    }
    await this.succeeded(req, sessionCounts);
    this.log.info(
      { keyId: result.access.keyId, key: result.access.name, address: clientAddress(req) },
      "browser signed in",
    );
    redirect(res, "/", { "set-cookie": this.cookie.set(result.session.token, result.session.expiresAt) });
  }

  private async signInWithLink(
    req: IncomingMessage,
    res: ServerResponse,
    token: string | null,
    sessionCounts: boolean,
  ): Promise<void> {
    if (!(await this.takeAttempt(req, res))) return;
    const session = token ? await redeemSignInLink(this.prisma, token) : null;
    if (!session) {
      this.log.info({ address: clientAddress(req) }, "sign-in refused: a used, expired or unknown link");
      return sendPage(
        res,
        401,
        signInPage({
          notice:
            "That sign-in link has been used or has expired: each link works once, within 15 minutes. Restart Hangar for a new one, or sign in with an API key.",
        }),
      );
    }
    await this.succeeded(req, sessionCounts);
    this.log.info({ address: clientAddress(req) }, "browser signed in with the start-up link");
    // Location is "/": the token stays out of the next URL, the history entry and any Referer.
    redirect(res, "/", { "set-cookie": this.cookie.set(session.token, session.expiresAt) });
  }

  private async signOut(req: IncomingMessage, res: ServerResponse, sessionCounts: boolean): Promise<void> {
    const token = this.token(req, sessionCounts);
    if (token) {
      await endSession(this.prisma, token);
      this.credentials.forgetSession(token);
    }
    redirect(res, "/sign-in", { "set-cookie": this.cookie.clear() });
  }

  /**
   * Counts an attempt before checking it (so a burst cannot slip past the
   * limit), or answers 429 and returns false when the address has none left.
   */
  private async takeAttempt(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    try {
      await this.failures.consume(clientAddress(req));
      return true;
    } catch (rejection) {
      if (!(rejection instanceof RateLimiterRes)) throw rejection;
      const seconds = Math.max(1, Math.ceil(rejection.msBeforeNext / 1000));
      sendPage(
        res,
        429,
        signInPage({
          error: `Too many failed sign-ins from your address (at most ${MAX_FAILED_SIGN_INS} a minute). Try again in ${seconds} second${seconds === 1 ? "" : "s"}.`,
        }),
        { "retry-after": String(seconds) },
      );
      return false;
    }
  }

  /** A success returns its attempt, and ends the session the browser had before (one per browser). */
  private async succeeded(req: IncomingMessage, sessionCounts: boolean): Promise<void> {
    await this.failures.reward(clientAddress(req));
    const previous = this.token(req, sessionCounts);
    if (previous) {
      await endSession(this.prisma, previous);
      this.credentials.forgetSession(previous);
    }
  }
}
