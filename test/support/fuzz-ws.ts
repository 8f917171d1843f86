/**
 * Generated WebSocket input for the fuzz test: malformed handshakes on
 * /graphql, and malformed frames and graphql-ws messages after a valid one.
 */
import type { FuzzTarget } from "./fuzz-http.ts";
import type { Rng } from "./rng.ts";

export interface WsCase {
  kind: string;
  parts: Buffer[];
  /** The handshake is well-formed: the server must switch protocols. */
  valid: boolean;
  /** The input surely breaks the protocol: the server must close (or start closing) the socket. */
  mustClose: boolean;
}

interface FrameOptions {
  fin?: boolean;
  rsv?: number;
  masked?: boolean;
  /** Declare this payload length instead of the real one (the payload sent stays as given). */
  declared?: bigint;
}

/** A WebSocket frame as a client sends it (masked unless told otherwise). */
export function frame(opcode: number, payload: Buffer | string, opts: FrameOptions = {}): Buffer {
  const data = typeof payload === "string" ? Buffer.from(payload) : payload;
  const length = opts.declared ?? BigInt(data.length);
  const masked = opts.masked ?? true;
  const head: number[] = [((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | (opcode & 0x0f)];
  let extended = Buffer.alloc(0);
  if (length < 126n) head.push((masked ? 0x80 : 0) | Number(length));
  else if (length < 65536n) {
    head.push((masked ? 0x80 : 0) | 126);
    extended = Buffer.alloc(2);
    extended.writeUInt16BE(Number(length));
  } else {
    head.push((masked ? 0x80 : 0) | 127);
    extended = Buffer.alloc(8);
    extended.writeBigUInt64BE(length);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), extended, data]);
  const mask = Buffer.from([0x12, 0x34, 0x56, 0x78]);
  const body = Buffer.from(data.map((byte, i) => byte ^ (mask[i % 4] as number)));
  return Buffer.concat([Buffer.from(head), extended, mask, body]);
}

const text = (value: unknown) => frame(1, typeof value === "string" ? value : JSON.stringify(value));

function closeFrame(code: number, reason: Buffer = Buffer.alloc(0)): Buffer {
  const payload = Buffer.alloc(2);
  payload.writeUInt16BE(code);
  return frame(8, Buffer.concat([payload, reason]));
}

function handshake(
  t: FuzzTarget,
  rng: Rng,
  changes: Record<string, string | null> = {},
  first?: string,
): Buffer {
  const key = rng.bytes(16).toString("base64");
  const headers: Record<string, string | null> = {
    Host: t.host,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": key,
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Protocol": "graphql-transport-ws",
    ...changes,
  };
  const lines = [first ?? "GET /graphql HTTP/1.1"];
  for (const [name, value] of Object.entries(headers)) if (value !== null) lines.push(`${name}: ${value}`);
  return Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "latin1");
}

type Named<T> = [name: string, make: () => T];

/** Frames that break the protocol, each of which makes the server close the socket. */
function badFrames(rng: Rng, t: FuzzTarget, initialised: boolean): [string, Buffer[]] {
  const options: Named<Buffer[]>[] = [
    ["reserved opcode", () => [frame(rng.pick([3, 4, 5, 6, 7, 11, 12, 13, 14, 15]), "x")]],
    ["reserved bits", () => [frame(1, '{"type":"ping"}', { rsv: rng.range(1, 7) })]],
    ["unmasked", () => [frame(1, '{"type":"ping"}', { masked: false })]],
    [
      "length over 2^63",
      () => [frame(2, Buffer.alloc(0), { declared: 0x8000_0000_0000_0000n + BigInt(rng.int(1000)) })],
    ],
    [
      "length over maxPayload",
      () => [frame(1, Buffer.alloc(0), { declared: BigInt(rng.range(1024 * 1024 + 1, 64 * 1024 * 1024)) })],
    ],
    [
      "bad UTF-8",
      () => [frame(1, Buffer.from(rng.pick([[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0x7b, 0xe2, 0x82]])))],
    ],
    ["not JSON", () => [text(rng.pick(["{", "not json", "", "null", "[]", '"x"', "1"]))]],
    [
      "unknown type",
      () => [text({ type: rng.pick(["nope", "", "CONNECTION_INIT", "start", "connection_terminate"]) })],
    ],
    [
      "init payload not an object",
      () => [text({ type: "connection_init", payload: rng.pick(["x", 1, [1]]) })],
    ],
    [
      "query not a string",
      () => [text({ id: "1", type: "subscribe", payload: { query: rng.pick([1, null, {}]) } })],
    ],
    ["id not a string", () => [text({ id: 1, type: "subscribe", payload: { query: "{ __typename }" } })]],
    ["long ping", () => [frame(9, "p".repeat(rng.range(126, 300)))]],
    ["fragmented ping", () => [frame(9, "p", { fin: false })]],
    ["continuation first", () => [frame(0, "continued")]],
    ["new message mid-fragment", () => [frame(1, '{"type":', { fin: false }), frame(1, '"ping"}')]],
    ["bad close code", () => [closeFrame(rng.pick([0, 999, 1004, 1005, 1006, 1015, 2999, 5000, 65535]))]],
    ["1-byte close", () => [frame(8, Buffer.from([0x03]))]],
    ["close reason not UTF-8", () => [closeFrame(1000, Buffer.from([0xff, 0xfe]))]],
    ["random bytes", () => [rng.bytes(rng.range(1, 64))]],
  ];
  if (!initialised) {
    options.push([
      "subscribe before init",
      () => [text({ id: "1", type: "subscribe", payload: { query: "{ __typename }" } })],
    ]);
    options.push([
      "wrong key",
      () => [text({ type: "connection_init", payload: { authorization: "Bearer hk_wrong" } })],
    ]);
    options.push([
      "authorization that is not a string",
      () => [
        text({
          type: "connection_init",
          payload: { authorization: rng.pick<unknown>([{ toString: 1 }, { valueOf: {} }, [], 7]) },
        }),
      ],
    ]);
  } else {
    options.push([
      "second init",
      () => [text({ type: "connection_init", payload: { authorization: `Bearer ${t.key}` } })],
    ]);
  }
  const [name, make] = rng.pick(options);
  return [name, make()];
}

/** Messages that are fine or only answered with an error: the connection stays open after them. */
function harmlessFrames(rng: Rng, initialised: boolean): [string[], Buffer[]] {
  const options: Named<Buffer>[] = [
    ["ping message", () => text({ type: "ping" })],
    ["pong message", () => text({ type: "pong" })],
    ["ping frame", () => frame(9, "hi")],
    ["unsolicited pong frame", () => frame(10, "unsolicited pong")],
  ];
  if (initialised) {
    options.push(
      [
        "query",
        () => text({ id: `s${rng.int(100)}`, type: "subscribe", payload: { query: "{ __typename }" } }),
      ],
      ["syntax error", () => text({ id: "bad", type: "subscribe", payload: { query: "{ nope(" } })],
      [
        "document nested 3,000 deep",
        () =>
          text({
            id: "deep",
            type: "subscribe",
            payload: { query: `{${"a{".repeat(3000)}${"}".repeat(3000)}}` },
          }),
      ],
      ["complete of nothing", () => text({ id: "x", type: "complete" })],
      // Raw JSON variables nested far deeper than any walk over them may recurse.
      [
        "variables nested 50,000 deep",
        () =>
          frame(
            1,
            '{"id":"v","type":"subscribe","payload":{"query":"subscription($id: ID!) { deploymentStatus(deploymentId: $id) { id } }",' +
              `"variables":{"id":"dep_AAAAAAAAAAAAAAAA","junk":${'{"a":'.repeat(50_000)}1${"}".repeat(50_000)}}}}`,
          ),
      ],
    );
  }
  const names: string[] = [];
  const out: Buffer[] = [];
  for (let i = rng.int(3); i > 0; i--) {
    const [name, make] = rng.pick(options);
    names.push(name);
    out.push(make());
  }
  return [names, out];
}

function mutated(rng: Rng, bytes: Buffer): Buffer {
  const out = Buffer.from(bytes);
  for (let i = rng.range(1, 4); i > 0; i--) out[rng.int(out.length)] = rng.int(256);
  return out;
}

const BAD_HANDSHAKES: ((t: FuzzTarget, rng: Rng) => Buffer)[] = [
  (t, rng) =>
    handshake(
      t,
      rng,
      {},
      `GET ${rng.pick(["/", "//", "/graphql/", "/models/x/predict", "/healthz", "*"])} HTTP/1.1`,
    ),
  (t, rng) =>
    handshake(
      t,
      rng,
      {},
      `GET ${rng.pick(["/graphql?%ZZ", "http://evil/graphql", "/graphql%00", "/gr aphql"])} HTTP/1.1`,
    ),
  (t, rng) =>
    handshake(t, rng, {}, `${rng.pick(["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])} /graphql HTTP/1.1`),
  (t, rng) =>
    handshake(t, rng, { Upgrade: rng.pick(["h2c", "websocket, h2c", "WebSocket2", "", "TLS/1.0"]) }),
  (t, rng) =>
    handshake(t, rng, { "Sec-WebSocket-Version": rng.pick(["8", "14", "", "13, 8", "thirteen", null]) }),
  (t, rng) =>
    handshake(t, rng, {
      "Sec-WebSocket-Key": rng.pick([
        null,
        "",
        "short",
        "!!!!!!!!!!!!!!!!!!!!!!==",
        "dGhlIHNhbXBsZSBub25jZQ",
        "a".repeat(100),
      ]),
    }),
  (t, rng) =>
    handshake(t, rng, {
      "Sec-WebSocket-Protocol": rng.pick(["a b", ",,", "graphql-ws", "", "x".repeat(500)]),
    }),
  (t, rng) => handshake(t, rng, { Host: rng.pick(["a b", "[", "x:99999", "%"]) }),
  (t, rng) =>
    handshake(t, rng, { "Sec-WebSocket-Extensions": rng.pick(["permessage-deflate; x=1", ";;", "\u00ff"]) }),
  (t, rng) => handshake(t, rng, { Connection: rng.pick(["Upgrade, close", "keep-alive", null]) }),
  (t, rng) => handshake(t, rng, { "Content-Length": "5" }, undefined),
  (t, rng) => mutated(rng, handshake(t, rng)),
];

export function wsCase(rng: Rng, t: FuzzTarget): WsCase {
  // Appended to everything: a frame no server may take (opcode 3), so every socket ends promptly.
  const finalViolation = frame(3, "end");
  if (rng.chance(0.3)) {
    const bad = rng.pick(BAD_HANDSHAKES)(t, rng);
    return { kind: "bad handshake", parts: [bad, finalViolation], valid: false, mustClose: false };
  }
  const initialised = rng.chance(0.5);
  const frames: Buffer[] = [];
  if (initialised) {
    frames.push(text({ type: "connection_init", payload: { authorization: `Bearer ${t.key}` } }));
  }
  const [harmless, harmlessBytes] = harmlessFrames(rng, initialised);
  frames.push(...harmlessBytes);
  const [badName, bad] = badFrames(rng, t, initialised);
  const mutate = rng.chance(0.15);
  // The bad frames go last, on their own, once the server has acted on the rest (see fuzz.test.ts):
  // what a slow message before them leads to (an internal error, say) must not be hidden by their close.
  const parts = rng.chance(0.5) ? [handshake(t, rng), Buffer.concat(frames)] : [handshake(t, rng), ...frames];
  parts.push(Buffer.concat([...(mutate ? bad.map((b) => mutated(rng, b)) : bad), finalViolation]));
  const before = [initialised ? "init" : null, ...harmless].filter((x) => x !== null).join(", ");
  return {
    kind: `frames: ${before || "nothing"}, then ${mutate ? "mutated " : ""}${badName}`,
    parts,
    valid: true,
    // Mutated or random bytes may declare a long payload (swallowing what follows), which the server
    // may wait for like any slow client: only the others must be closed on.
    mustClose: !mutate && badName !== "random bytes",
  };
}

/** The close code in the server's frames after a 101, if it sent one. */
export function closeCodeOf(afterHandshake: Buffer): number | null {
  let at = 0;
  while (at + 2 <= afterHandshake.length) {
    const opcode = (afterHandshake[at] as number) & 0x0f;
    let length = (afterHandshake[at + 1] as number) & 0x7f;
    let start = at + 2;
    if (length === 126) {
      if (start + 2 > afterHandshake.length) return null;
      length = afterHandshake.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      if (start + 8 > afterHandshake.length) return null;
      length = Number(afterHandshake.readBigUInt64BE(start));
      start += 8;
    }
    if (opcode === 8)
      return length >= 2 && start + 2 <= afterHandshake.length ? afterHandshake.readUInt16BE(start) : 1005;
    at = start + length;
  }
  return null;
}
