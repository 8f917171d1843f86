/**
 * The HTTP side of webhook delivery (API.md section 11): one signed POST, an answer within the timeout
 * or none, redirects never followed. What the receiver says past its status is read and dropped.
 */
import { Agent, request } from "undici";
import { signatureHeader, type WebhookBody } from "../domain/webhooks.ts";

/** One attempt to send. */
export interface OutgoingDelivery {
  deliveryId: string;
  url: string;
  secret: string;
  body: WebhookBody;
  /** The attempt's time (ms since the epoch): signed as `t`. */
  at: number;
}

export type SendOutcome = { ok: true; status: number } | { ok: false; status: number | null; error: string };

/** Sends a delivery; never throws (a failure is an outcome), and stops when `signal` aborts. */
export interface WebhookSender {
  send(delivery: OutgoingDelivery, signal: AbortSignal): Promise<SendOutcome>;
}

/** Longest lastError kept: a receiver's or the network's words, cut short. */
const MAX_ERROR_LENGTH = 500;
/** What is read of an answer's body before the connection is dropped. */
const DRAIN_LIMIT_BYTES = 64 * 1024;

export class HttpWebhookSender implements WebhookSender {
  private readonly agent: Agent;

  constructor(private readonly timeoutMs: number) {
    // Its own connections: a receiver that hangs holds no socket the gateway or the members need. No
    // cap per origin: webhooks on one host must not queue behind one of them that hangs (the worker's
    // pool bounds how many are open).
    this.agent = new Agent({
      connect: { timeout: timeoutMs },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4_000,
    });
  }

  async send(delivery: OutgoingDelivery, signal: AbortSignal): Promise<SendOutcome> {
    const body = JSON.stringify(delivery.body);
    const t = Math.floor(delivery.at / 1000);
    // One controller per attempt, tied to the worker's for as long as the attempt lasts (a listener
    // left on the long-lived signal would pile up, one per attempt).
    const attempt = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      attempt.abort();
    }, this.timeoutMs);
    const stop = () => attempt.abort();
    signal.addEventListener("abort", stop, { once: true });
    try {
      // undici's request follows no redirect: a 3xx comes back as the answer it is.
      const answer = await request(delivery.url, {
        method: "POST",
        dispatcher: this.agent,
        signal: attempt.signal,
        headers: {
          "content-type": "application/json",
          "user-agent": "Hangar-Webhooks",
          "x-hangar-event": delivery.body.type,
          "x-hangar-delivery": delivery.deliveryId,
          "x-hangar-signature": signatureHeader(delivery.secret, t, body),
        },
        body,
      });
      // The status is the answer; the body is drained in the background, bounded, so that the
      // connection can be used again (or dropped past the limit).
      void answer.body.dump({ limit: DRAIN_LIMIT_BYTES }).catch(() => undefined);
      const status = answer.statusCode;
      if (status >= 200 && status < 300) return { ok: true, status };
      if (status >= 300 && status < 400) {
        return { ok: false, status, error: `the receiver answered ${status} (a redirect, not followed)` };
      }
      return { ok: false, status, error: `the receiver answered ${status}` };
    } catch (error) {
      if (timedOut) {
        return { ok: false, status: null, error: `no answer within ${this.timeoutMs / 1000} s` };
      }
      if (signal.aborted) return { ok: false, status: null, error: "interrupted: Hangar is stopping" };
      return { ok: false, status: null, error: describeFailure(error) };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
    }
  }

  async close(): Promise<void> {
    await this.agent.destroy();
  }
}

/** A network failure in a few words (its code first): never the URL, which may hold a token. */
function describeFailure(error: unknown): string {
  const code =
    typeof error === "object" && error !== null && "code" in error
      ? String((error as { code: unknown }).code)
      : "";
  const cause =
    typeof error === "object" && error !== null && "cause" in error && (error as { cause: unknown }).cause
      ? (error as { cause: { code?: unknown; message?: unknown } }).cause
      : null;
  const causeCode = cause && typeof cause.code === "string" ? cause.code : "";
  const message = error instanceof Error ? error.message : String(error);
  const text = [code || causeCode, message].filter(Boolean).join(": ");
  // Control characters out: PostgreSQL refuses NUL in text, and the words end up in a table.
  return `could not deliver: ${text}`.replace(/\p{Cc}/gu, " ").slice(0, MAX_ERROR_LENGTH);
}
