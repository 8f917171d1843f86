/**
 * Webhook rules (API.md section 11), pure: what a webhook URL may be, when a failed delivery is tried
 * again, and how a body is signed. The worker (controllers/webhooks.ts) and the API both ask here.
 */
import { createHmac, randomBytes } from "node:crypto";

/** Longest webhook URL accepted; browsers and proxies commonly stop near here. */
export const MAX_WEBHOOK_URL_LENGTH = 2048;

/** Live webhooks at most, all models together: every event writes one row per matching webhook. */
export const MAX_WEBHOOKS = 1000;

/** The first retry waits this long, each next one twice as long ... */
export const FIRST_RETRY_MS = 1000;
/** ... up to this ... */
export const MAX_RETRY_MS = 10 * 60_000;
/** ... for this long from the first attempt; then the delivery is FAILED and the next one goes. */
export const RETRY_FOR_MS = 24 * 60 * 60_000;

/** How long a receiver has to answer by default (HANGAR_WEBHOOK_TIMEOUT_MS). */
export const DEFAULT_ANSWER_TIMEOUT_MS = 10_000;

/** Why `raw` may not be a webhook URL, or null when it may. */
export function webhookUrlProblem(raw: string): string | null {
  if (raw.length === 0 || raw.length > MAX_WEBHOOK_URL_LENGTH) {
    return `a webhook URL is 1-${MAX_WEBHOOK_URL_LENGTH} characters`;
  }
  // URL parsing would quietly drop or encode these; a URL that means something else than it reads is refused.
  if (/[\s\p{Cc}]/u.test(raw)) return "a webhook URL may not hold spaces or control characters";
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "not a URL: give an absolute http:// or https:// URL";
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    return `a webhook URL must be http:// or https://, not ${url.protocol}//`;
  }
  // Credentials in a URL would be listed to everyone who may list webhooks, and fetch refuses them.
  if (url.username !== "" || url.password !== "") {
    return "a webhook URL may not hold a user name or password (check the signature instead)";
  }
  return null;
}

/**
 * How long to wait after failed attempt number `attempts` (1-based): 1, 2, 4 ... s, at most
 * MAX_RETRY_MS.
 */
export function retryDelayMs(attempts: number): number {
  // 2^30 s is far past the cap: the exponent is bounded so the arithmetic stays exact.
  return Math.min(FIRST_RETRY_MS * 2 ** Math.min(Math.max(attempts - 1, 0), 30), MAX_RETRY_MS);
}

/**
 * After a failed attempt (the `attempts`-th, made at `now`, the first at `firstAttemptAt`): when to try
 * again, or null when the next try would fall more than RETRY_FOR_MS after the first (FAILED).
 */
export function nextAttemptAfterFailure(
  attempts: number,
  firstAttemptAt: number,
  now: number,
): number | null {
  const next = now + retryDelayMs(attempts);
  return next - firstAttemptAt > RETRY_FOR_MS ? null : next;
}

/**
 * The `x-hangar-signature` header: `t=<unix seconds>,sha256=<hex HMAC-SHA256 of "<t>.<body>">`. The
 * time is signed with the body, so that a receiver refusing stale `t` refuses a replayed request.
 */
export function signatureHeader(secret: string, unixSeconds: number, body: string): string {
  const mac = createHmac("sha256", secret).update(`${unixSeconds}.${body}`).digest("hex");
  return `t=${unixSeconds},sha256=${mac}`;
}

/** A delivery's body, as API.md section 11 lists its fields. */
export interface WebhookBody {
  cursor: string;
  type: string;
  at: string;
  message: string | null;
  actor: string | null;
  modelId: string;
  deploymentId: string | null;
  environmentId: string | null;
  promotionId: string | null;
}

/** A new signing secret: 256 random bits, recognisable by its prefix. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString("base64url")}`;
}
