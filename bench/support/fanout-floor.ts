/**
 * The floor for bench/fanout.ts: a bare `ws` server (no GraphQL, no database) speaking just enough
 * graphql-transport-ws for the fan-out clients, which sends each stage as one message serialized
 * once and written to every socket. What it measures is what this machine's kernel, Node and `ws`
 * cost to reach N sockets, before any GraphQL or database work: what Hangar is measured against.
 *
 * Settings in FANOUT_FLOOR: { count, stageSeconds, fromStage }. Prints `port <n>`, then, once every
 * client has subscribed and a moment has passed, `stage <k> at <ms>` as it starts sending stage k;
 * exits once every client has had the end and closed.
 */
import { type WebSocket, WebSocketServer } from "ws";

const { count, stageSeconds, fromStage } = JSON.parse(process.env.FANOUT_FLOOR ?? "{}") as {
  count: number;
  stageSeconds: number;
  fromStage: number;
};

/** A message shaped like Hangar's promotionProgress answer to bench/fanout.ts's operation. */
function message(status: string, stage: number): string {
  const at = new Date().toISOString();
  const step = (name: string, done: boolean) => ({
    name,
    status: done ? "SUCCEEDED" : "PENDING",
    startedAt: done ? at : null,
    finishedAt: done ? at : null,
    message: done ? `${name} done` : null,
  });
  return JSON.stringify({
    id: "1",
    type: "next",
    payload: {
      data: {
        promotionProgress: {
          status,
          canaryStage: stage,
          percentTrafficToNewVersion: stage * 10,
          id: "prm_floor000000000000",
          errorMessage: null,
          steps: [step("CREATE_DEPLOYMENT", true), step("START_DEPLOYMENT", true), step("ACTIVATE", false)],
          deployment: { id: "dep_floor000000000002", name: "floor-2", status: "ACTIVE" },
          previousDeployment: { id: "dep_floor000000000001", name: "floor-1", status: "ACTIVE" },
        },
      },
    },
  });
}

const subscribed: WebSocket[] = [];
let closed = 0;
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function sendAll(data: string): void {
  for (const ws of subscribed) ws.send(data);
}

async function run(): Promise<void> {
  await sleep(2_000);
  for (let stage = fromStage + 1; stage <= 10; stage++) {
    const data = message("RAMPING_UP", stage);
    process.stdout.write(`stage ${stage} at ${Date.now()}\n`);
    sendAll(data);
    await sleep(stageSeconds * 1000);
  }
  sendAll(message("SUCCEEDED", 10));
  sendAll('{"id":"1","type":"complete"}');
}

wss.on("connection", (ws) => {
  ws.on("message", (raw) => {
    const type = (JSON.parse(String(raw)) as { type?: string }).type;
    if (type === "connection_init") ws.send('{"type":"connection_ack"}');
    else if (type === "subscribe") {
      ws.send(message("PAUSED", fromStage));
      subscribed.push(ws);
      // Done once every client has had the end and gone.
      ws.on("close", () => {
        if (++closed === count) wss.close(() => process.exit(0));
      });
      if (subscribed.length === count) void run();
    }
  });
});
wss.on("listening", () => {
  const address = wss.address();
  process.stdout.write(`port ${typeof address === "object" && address ? address.port : address}\n`);
});
