/**
 * The HTTP side of webhook delivery (API.md section 11): one signed POST, an answer within the timeout
 * or none, redirects never followed. What the receiver says past its status is read and dropped.
 */
import { type LookupAddress, type LookupOptions, lookup } from "node:dns";
import { BlockList, isIP } from "node:net";
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

/**
 * Where a webhook may not POST unless HANGAR_WEBHOOK_ALLOW_LOCAL says so: this machine (loopback, the
 * unspecified address) and link-local addresses (where clouds answer with instance credentials). Any
 * key that may create a webhook would otherwise have Hangar POST to services that trust their callers
 * for being local. IPv4-mapped IPv6 addresses are checked against the IPv4 rules.
 */
const LOCAL = new BlockList();
LOCAL.addSubnet("127.0.0.0", 8, "ipv4");
LOCAL.addSubnet("0.0.0.0", 8, "ipv4");
LOCAL.addSubnet("169.254.0.0", 16, "ipv4");
LOCAL.addAddress("::1", "ipv6");
LOCAL.addAddress("::", "ipv6");
LOCAL.addSubnet("fe80::", 10, "ipv6");

/** Whether `address` (an IP) is on this machine or link-local. */
export function isLocalAddress(address: string): boolean {
  const family = isIP(address);
  return family !== 0 && LOCAL.check(address, family === 4 ? "ipv4" : "ipv6");
}

const LOCAL_REFUSED = "HANGAR_WEBHOOK_ALLOW_LOCAL=1 allows it";

function localRefusal(host: string, address: string): string {
  const what = host === address ? address : `${host} (${address})`;
  return `could not deliver: ${what} is on this machine or link-local, where webhooks do not go (${LOCAL_REFUSED})`;
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * dns.lookup for the sockets webhooks open: a name that resolves to a local address fails the
 * connection, checked on the addresses actually connected to (a name cannot pass a check and then
 * resolve elsewhere).
 */
function remoteOnlyLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const local = addresses.find((entry) => isLocalAddress(entry.address));
    if (local) {
      const refused: NodeJS.ErrnoException = new Error(localRefusal(hostname, local.address));
      refused.code = "EWEBHOOKLOCAL";
      return callback(refused, []);
    }
    if (options.all) return callback(null, addresses);
    const [first] = addresses;
    if (!first)
      return callback(Object.assign(new Error(`${hostname} has no address`), { code: "ENOTFOUND" }), []);
    callback(null, first.address, first.family);
  });
}

export class HttpWebhookSender implements WebhookSender {
  private readonly agent: Agent;

  constructor(
    private readonly timeoutMs: number,
    /** HANGAR_WEBHOOK_ALLOW_LOCAL: receivers on this machine or link-local addresses are allowed. */
    private readonly allowLocal = false,
  ) {
    // Its own connections: a receiver that hangs holds no socket the gateway or the members need. No
    // cap per origin: webhooks on one host must not queue behind one of them that hangs (the worker's
    // pool bounds how many are open).
    this.agent = new Agent({
      connect: { timeout: timeoutMs, ...(allowLocal ? {} : { lookup: remoteOnlyLookup }) },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      keepAliveTimeout: 4_000,
    });
  }

  async send(delivery: OutgoingDelivery, signal: AbortSignal): Promise<SendOutcome> {
    if (!this.allowLocal) {
      // An address in the URL is connected to without a lookup: it is checked here.
      const host = new URL(delivery.url).hostname.replace(/^\[|\]$/g, "");
      if (isLocalAddress(host)) return { ok: false, status: null, error: localRefusal(host, host) };
    }
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
      const refused = localRefusalOf(error);
      if (refused) return { ok: false, status: null, error: refused };
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

/** The lookup's refusal of a local address, when that is why the connection failed. */
function localRefusalOf(error: unknown): string | null {
  for (let e = error; typeof e === "object" && e !== null; e = (e as { cause?: unknown }).cause) {
    if ((e as { code?: unknown }).code === "EWEBHOOKLOCAL") return (e as Error).message;
  }
  return null;
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
