/**
 * One process of subscription fan-out clients (bench/fanout.ts starts several): opens COUNT
 * graphql-ws connections (graphql-transport-ws, spoken directly over `ws` so the client costs
 * little), subscribes each to the same promotionProgress operation, and records when each message
 * arrived. Prints `ready <n>` once every client has its first message, then, after every
 * subscription has completed, `result <json>`: per client, the arrival times (ms, wall clock), the
 * canary stage and status of each message, and how it ended.
 *
 * Settings come as JSON in FANOUT_CLIENT: { url, key, query, variables, count, concurrency }.
 */
import WebSocket from "ws";

interface Settings {
  url: string;
  key: string;
  query: string;
  variables: Record<string, unknown>;
  count: number;
  /** Connections being set up at once. */
  concurrency: number;
}

export interface ClientRecord {
  /** Arrival of each message (ms since the epoch, sub-millisecond). */
  t: number[];
  /** canaryStage of each message (-1 when null). */
  s: number[];
  /** status of each message. */
  st: string[];
  /** "complete", or why it ended otherwise. */
  end: string | null;
}

const settings = JSON.parse(process.env.FANOUT_CLIENT ?? "{}") as Settings;
const wsUrl = `${settings.url.replace(/^http/, "ws")}/graphql`;
const init = JSON.stringify({
  type: "connection_init",
  payload: { authorization: `Bearer ${settings.key}` },
});
const subscribeMessage = JSON.stringify({
  id: "1",
  type: "subscribe",
  payload: { query: settings.query, variables: settings.variables },
});
// The operation selects status and canaryStage first, so they are found without parsing the whole message.
const PROGRESS = /"promotionProgress":\{"status":"(\w+)","canaryStage":(\d+|null)/;

const records: ClientRecord[] = [];
let ready = 0;
let ended = 0;
let readyPrinted = false;

const now = () => performance.timeOrigin + performance.now();

function finish(record: ClientRecord, why: string): void {
  if (record.end !== null) return;
  record.end = why;
  ended++;
  if (ended === settings.count) {
    process.stdout.write(`result ${JSON.stringify(records)}\n`, () => process.exit(0));
  }
}

function connect(onFirst: () => void): void {
  const record: ClientRecord = { t: [], s: [], st: [], end: null };
  records.push(record);
  let first = true;
  const ws = new WebSocket(wsUrl, "graphql-transport-ws", {
    perMessageDeflate: false,
    skipUTF8Validation: true,
  });
  ws.on("open", () => ws.send(init));
  ws.on("message", (data: Buffer) => {
    const at = now();
    const text = data.toString();
    if (text.startsWith('{"id":"1","type":"next"')) {
      const match = PROGRESS.exec(text);
      record.t.push(at);
      record.st.push(match?.[1] ?? "?");
      record.s.push(match?.[2] === undefined || match[2] === "null" ? -1 : Number(match[2]));
      if (first) {
        first = false;
        onFirst();
      }
    } else if (text.startsWith('{"type":"connection_ack"')) {
      ws.send(subscribeMessage);
    } else if (text.startsWith('{"id":"1","type":"complete"')) {
      finish(record, "complete");
      ws.close();
    } else if (text.startsWith('{"id":"1","type":"error"')) {
      finish(record, `error: ${text.slice(0, 300)}`);
      ws.close();
    }
  });
  ws.on("error", (error) => finish(record, `socket error: ${error.message}`));
  ws.on("close", (code) => {
    if (first) onFirst();
    finish(record, `closed (${code})`);
  });
}

// Set up connections a few at a time, so the server's accept backlog is never flooded.
let started = 0;
const next = () => {
  if (started >= settings.count) return;
  started++;
  let counted = false;
  connect(() => {
    if (counted) return;
    counted = true;
    ready++;
    if (ready === settings.count && !readyPrinted) {
      readyPrinted = true;
      process.stdout.write(`ready ${ready}\n`);
    }
    next();
  });
};
for (let i = 0; i < Math.min(settings.concurrency, settings.count); i++) next();
