/**
 * The webhook sender against a real HTTP server on loopback: what it sends, and what it makes of a 2xx,
 * a redirect (not followed), a 500, silence past the timeout, a refused connection and a stop.
 */
import { createHmac } from "node:crypto";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  HttpWebhookSender,
  isLocalAddress,
  type OutgoingDelivery,
} from "../../src/controllers/webhook-sender.ts";

let server: Server;
let base: string;
const seen: Array<{ url: string; headers: IncomingMessage["headers"]; body: string }> = [];
// The receivers here listen on loopback.
const sender = new HttpWebhookSender(300, true);

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({ url: req.url ?? "", headers: req.headers, body: Buffer.concat(chunks).toString() });
      if (req.url === "/ok") res.writeHead(204).end();
      else if (req.url === "/redirect") res.writeHead(302, { location: "/ok" }).end();
      else if (req.url === "/error") res.writeHead(500).end("broken");
      else if (req.url === "/big") res.writeHead(200).end("x".repeat(1_000_000));
      // /silent: never answers
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await sender.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const delivery = (url: string): OutgoingDelivery => ({
  deliveryId: "dlv_AAAAAAAAAAAAAAAA",
  url,
  secret: "whsec_sender",
  at: 1_733_300_000_500,
  body: {
    cursor: "ZXZ0OjE",
    type: "PROMOTION_FINISHED",
    at: "2026-12-04T12:00:00.000Z",
    message: "done",
    actor: null,
    modelId: "mdl_AAAAAAAAAAAAAAAA",
    deploymentId: null,
    environmentId: null,
    promotionId: "prm_AAAAAAAAAAAAAAAA",
  },
});

describe("HttpWebhookSender", () => {
  const never = new AbortController().signal;

  it("POSTs the JSON body with the event, delivery and signature headers", async () => {
    expect(await sender.send(delivery(`${base}/ok`), never)).toEqual({ ok: true, status: 204 });
    const request = seen.at(-1);
    expect(request?.headers).toMatchObject({
      "content-type": "application/json",
      "x-hangar-event": "PROMOTION_FINISHED",
      "x-hangar-delivery": "dlv_AAAAAAAAAAAAAAAA",
    });
    expect(JSON.parse(request?.body ?? "")).toEqual(delivery("").body);
    const mac = createHmac("sha256", "whsec_sender").update(`1733300000.${request?.body}`).digest("hex");
    expect(request?.headers["x-hangar-signature"]).toBe(`t=1733300000,sha256=${mac}`);
  });

  it("does not follow a redirect: a 3xx is a failed attempt", async () => {
    const before = seen.length;
    expect(await sender.send(delivery(`${base}/redirect`), never)).toEqual({
      ok: false,
      status: 302,
      error: "the receiver answered 302 (a redirect, not followed)",
    });
    expect(seen.slice(before).map((r) => r.url)).toEqual(["/redirect"]);
  });

  it("fails on a 5xx, on silence past the timeout and on a refused connection; a big answer is fine", async () => {
    expect(await sender.send(delivery(`${base}/error`), never)).toEqual({
      ok: false,
      status: 500,
      error: "the receiver answered 500",
    });
    const started = Date.now();
    expect(await sender.send(delivery(`${base}/silent`), never)).toEqual({
      ok: false,
      status: null,
      error: "no answer within 0.3 s",
    });
    expect(Date.now() - started).toBeLessThan(2000);
    const refused = await sender.send(delivery("http://127.0.0.1:1/"), never);
    expect(refused).toMatchObject({ ok: false, status: null, error: expect.stringMatching(/ECONNREFUSED/) });
    expect(await sender.send(delivery(`${base}/big`), never)).toEqual({ ok: true, status: 200 });
  });

  it("stops at once when told to", async () => {
    const stop = new AbortController();
    const sending = sender.send(delivery(`${base}/silent`), stop.signal);
    setTimeout(() => stop.abort(), 20);
    expect(await sending).toEqual({ ok: false, status: null, error: "interrupted: Hangar is stopping" });
  });
});

describe("webhooks to this machine and link-local addresses", () => {
  it("are refused without HANGAR_WEBHOOK_ALLOW_LOCAL, by address and by a name resolving to one, and nothing is sent", async () => {
    const guarded = new HttpWebhookSender(1_000);
    const never = new AbortController().signal;
    const port = (server.address() as AddressInfo).port;
    const before = seen.length;
    try {
      for (const url of [
        `http://127.0.0.1:${port}/ok`,
        `http://localhost:${port}/ok`,
        `http://[::1]:${port}/ok`,
      ]) {
        const outcome = await guarded.send(delivery(url), never);
        expect(outcome).toMatchObject({ ok: false, status: null });
        expect(outcome.ok ? "" : outcome.error).toMatch(
          /is on this machine or link-local, where webhooks do not go \(HANGAR_WEBHOOK_ALLOW_LOCAL=1 allows it\)/,
        );
      }
    } finally {
      await guarded.close();
    }
    expect(seen.length).toBe(before);
  });

  it("tells local and link-local addresses from others, IPv4-mapped ones included", () => {
    for (const local of [
      "127.0.0.1",
      "127.8.9.10",
      "0.0.0.0",
      "169.254.169.254",
      "::1",
      "::",
      "fe80::1",
      "::ffff:127.0.0.1",
    ]) {
      expect(isLocalAddress(local), local).toBe(true);
    }
    for (const remote of [
      "10.0.0.1",
      "192.168.1.20",
      "8.8.8.8",
      "2001:db8::1",
      "::ffff:10.1.2.3",
      "not an address",
    ]) {
      expect(isLocalAddress(remote), remote).toBe(false);
    }
  });
});
