import { createHmac, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll } from "vitest";
import { gql } from "./client.ts";
import type { TestHangar } from "./hangar.ts";

/** One POST a receiver got. */
export interface Received {
  path: string;
  headers: IncomingMessage["headers"];
  body: string;
  // biome-ignore lint/suspicious/noExplicitAny: bodies are inspected loosely.
  json: any;
  at: number;
}

/** What the receiver does with the n-th request (0-based) to a path: answer a status, or never answer. */
export type Behaviour = (path: string, n: number) => number | "hang";

/** An HTTP server on 127.0.0.1 standing in for a webhook receiver. */
export interface Receiver {
  /** The receiver's base URL; a webhook points at `${url}/some-path`. */
  url: string;
  received: Received[];
  /** Requests to `path`, in the order they arrived. */
  to(path: string): Received[];
  close(): Promise<void>;
}

const receivers = new Set<Receiver>();
afterAll(async () => {
  for (const receiver of [...receivers]) await receiver.close();
});

export async function startReceiver(behaviour: Behaviour = () => 200): Promise<Receiver> {
  const received: Received[] = [];
  const counts = new Map<string, number>();
  const held = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      const path = req.url ?? "/";
      let json: unknown = null;
      try {
        json = JSON.parse(body);
      } catch {}
      received.push({ path, headers: req.headers, body, json, at: Date.now() });
      const n = counts.get(path) ?? 0;
      counts.set(path, n + 1);
      const what = behaviour(path, n);
      if (what === "hang") {
        held.add(res);
        res.on("close", () => held.delete(res));
        return;
      }
      res.writeHead(what, { "content-type": "text/plain" }).end(`answered ${what}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const receiver: Receiver = {
    url: `http://127.0.0.1:${port}`,
    received,
    to: (path) => received.filter((r) => r.path === path),
    close: async () => {
      receivers.delete(receiver);
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  receivers.add(receiver);
  return receiver;
}

/**
 * Checks `x-hangar-signature` as a receiver would (API.md section 11): `t=<unix seconds>,sha256=<hex>`,
 * the hex being HMAC-SHA256 of `${t}.${body}` keyed by the secret, and `t` within `toleranceS` of now.
 * Returns t; throws when the header is missing, malformed, stale or wrong.
 */
export function verifySignature(request: Received, secret: string, toleranceS = 300): number {
  const header = request.headers["x-hangar-signature"];
  if (typeof header !== "string") throw new Error("no x-hangar-signature header");
  const match = /^t=(\d+),sha256=([0-9a-f]{64})$/.exec(header);
  if (!match) throw new Error(`malformed x-hangar-signature: ${header}`);
  const t = Number(match[1]);
  if (Math.abs(Date.now() / 1000 - t) > toleranceS) throw new Error(`stale t=${t}`);
  const expected = createHmac("sha256", secret).update(`${t}.${request.body}`).digest();
  if (!timingSafeEqual(expected, Buffer.from(match[2] as string, "hex"))) throw new Error("bad signature");
  return t;
}

export const CREATE_WEBHOOK = `mutation($input: CreateWebhookInput!) {
  createWebhook(input: $input) {
    __typename
    ... on CreatedWebhook { secret webhook { id url modelId events createdAt } }
    ... on UserError { code message field }
  }
}`;

/** Creates a webhook (with the hangar's key); returns its ID and secret. */
export async function createWebhook(
  hangar: TestHangar,
  input: { url: string; modelId?: string | null; events?: string[] | null },
): Promise<{ id: string; secret: string }> {
  const result = (await gql(hangar, CREATE_WEBHOOK, { input })).createWebhook;
  if (result.__typename !== "CreatedWebhook") throw new Error(`createWebhook: ${JSON.stringify(result)}`);
  return { id: result.webhook.id, secret: result.secret };
}

/** A webhook's deliveries as the API lists them (newest first). */
export async function deliveriesOf(hangar: TestHangar, id: string) {
  const { node } = await gql(
    hangar,
    `query($id: ID!) { node(id: $id) { ... on Webhook { deliveries(first: 500) { edges { node {
      id eventCursor eventType attempts status lastStatus lastError deliveredAt } } } } } }`,
    { id },
  );
  if (!node) throw new Error(`no webhook ${id}`);
  return node.deliveries.edges.map((edge: { node: unknown }) => edge.node) as Array<{
    id: string;
    eventCursor: string;
    eventType: string;
    attempts: number;
    status: string;
    lastStatus: number | null;
    lastError: string | null;
    deliveredAt: string | null;
  }>;
}
