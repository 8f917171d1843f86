/**
 * POST /graphql bodies within their limits (API.md section 8): a JSON body over HANGAR_MAX_BODY_BYTES and
 * an upload over HANGAR_MAX_UPLOAD_BYTES are refused as they stream in, without reading the rest.
 * Requests go over raw sockets, so that a test controls exactly what has been sent when the answer comes.
 */
import { randomBytes } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, PUSH_MUTATION, pack, push } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

const MAX_BODY = 64 * 1024;
const MAX_UPLOAD = 200_000;

let hangar: TestHangar;
/** The server of "uploads with the default limits", started with the file's own: the two starts overlap. */
let defaultsStart: Promise<TestHangar>;

beforeAll(async () => {
  defaultsStart = startHangar();
  // Awaited by its describe; a failure is reported there, not as an unhandled rejection.
  defaultsStart.catch(() => {});
  hangar = await startHangar({
    env: { HANGAR_MAX_BODY_BYTES: String(MAX_BODY), HANGAR_MAX_UPLOAD_BYTES: String(MAX_UPLOAD) },
  });
});

afterAll(async () => {
  await hangar?.dispose();
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A raw HTTP/1.1 exchange: write what you like, when you like; the answer is read as it comes. */
function open(head: Record<string, string>) {
  const { port } = new URL(hangar.url);
  const socket = net.connect(Number(port), "127.0.0.1");
  socket.on("error", () => {});
  let received = Buffer.alloc(0);
  let closed = false;
  let sent = 0;
  const answer = new Promise<Answer>((resolve, reject) => {
    const tryParse = () => {
      const end = received.indexOf("\r\n\r\n");
      if (end < 0) return;
      const [statusLine, ...lines] = received.subarray(0, end).toString("latin1").split("\r\n");
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      const length = Number(headers["content-length"] ?? Number.NaN);
      const body = received.subarray(end + 4);
      if (Number.isNaN(length) || body.length < length) return;
      resolve({
        status: Number(statusLine?.split(" ")[1]),
        headers,
        body: body.subarray(0, length).toString("utf8"),
      });
    };
    socket.on("data", (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      tryParse();
    });
    socket.on("close", () => {
      closed = true;
      reject(
        new Error(`connection closed without a whole answer: ${received.toString("latin1").slice(0, 300)}`),
      );
    });
  });
  answer.catch(() => {});
  const lines = Object.entries({ host: `127.0.0.1:${port}`, authorization: `Bearer ${hangar.key}`, ...head });
  socket.write(`POST /graphql HTTP/1.1\r\n${lines.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`);
  return {
    answer,
    closed: () => closed,
    sent: () => sent,
    /** Writes raw bytes (a Content-Length body). */
    write(data: Buffer | string): Promise<void> {
      sent += Buffer.byteLength(data);
      return new Promise((resolve) => socket.write(data, () => resolve()));
    },
    /** Writes one chunk of a chunked body. */
    chunk(data: Buffer | string): Promise<void> {
      sent += Buffer.byteLength(data);
      const size = Buffer.byteLength(data).toString(16);
      return new Promise((resolve) =>
        socket.write(
          Buffer.concat([Buffer.from(`${size}\r\n`), Buffer.from(data), Buffer.from("\r\n")]),
          () => resolve(),
        ),
      );
    },
    destroy: () => socket.destroy(),
  };
}

/**
 * Writes `total` bytes of chunks and stops there, the body unfinished: only a server that counts while
 * it reads can answer now. (What the client has written is no measure of what the server read: the
 * kernel's socket buffers hold megabytes.)
 */
async function sendUnfinished(
  exchange: ReturnType<typeof open>,
  piece: Buffer,
  total: number,
): Promise<Answer> {
  while (exchange.sent() < total && !exchange.closed()) await exchange.chunk(piece);
  return exchange.answer;
}

/** A GraphQL JSON body of exactly `size` bytes (padded with spaces, which JSON ignores). */
function jsonBody(size: number): Buffer {
  const json = JSON.stringify({ query: "{ __typename }" });
  return Buffer.concat([Buffer.from(json), Buffer.alloc(size - json.length, " ")]);
}

async function spoolLeftovers(): Promise<string[]> {
  const names = await readdir(path.join(hangar.dataDir, "artifacts")).catch(() => [] as string[]);
  return names.filter((name) => name.startsWith(".tmp-"));
}

describe("GraphQL JSON bodies", () => {
  it("takes a body of exactly the limit", async () => {
    const exchange = open({ "content-type": "application/json", "content-length": String(MAX_BODY) });
    await exchange.write(jsonBody(MAX_BODY));
    const answer = await exchange.answer;
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toEqual({ data: { __typename: "Query" } });
    exchange.destroy();
  });

  it("refuses a declared Content-Length over the limit with 413 at once, before any of the body is sent", async () => {
    const exchange = open({ "content-type": "application/json", "content-length": String(MAX_BODY + 1) });
    const answer = await exchange.answer;
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe("close");
    expect(JSON.parse(answer.body)).toMatchObject({ error_code: "payload_too_large" });
    expect(JSON.parse(answer.body).error).toContain("64 KB");
    // The connection ends with the answer: the body is never read.
    await waitFor(() => exchange.closed(), { what: "the server to close the connection" });
    expect(exchange.sent()).toBe(0);
  });

  it("refuses a chunked body with 413 as soon as it passes the limit, without waiting for its end", async () => {
    const exchange = open({ "content-type": "application/json", "transfer-encoding": "chunked" });
    const answer = await sendUnfinished(exchange, Buffer.alloc(4096, " "), 2 * MAX_BODY);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error_code: "payload_too_large" });
    await waitFor(() => exchange.closed(), { what: "the server to close the connection" });
  });

  it("reads a body whose Content-Length is a lie only as far as it says", async () => {
    // Declared small, sent large: the body is the declared bytes (not JSON here), the rest is not a body.
    const exchange = open({ "content-type": "application/json", "content-length": "10" });
    await exchange.write(Buffer.alloc(4 * MAX_BODY, "x"));
    const answer = await exchange.answer;
    expect(answer.status).toBe(400);
    exchange.destroy();
  });

  it("answers an empty chunked body with a 400, not a hang", async () => {
    const exchange = open({ "content-type": "application/json", "transfer-encoding": "chunked" });
    await exchange.write("0\r\n\r\n");
    const answer = await exchange.answer;
    expect(answer.status).toBe(400);
    exchange.destroy();
  });

  it("keeps serving ordinary requests", async () => {
    expect(await gql(hangar, "{ __typename }")).toEqual({ __typename: "Query" });
  });
});

const BOUNDARY = "hangar-test-boundary";

function multipartHead(modelName: string): Buffer {
  const operations = JSON.stringify({
    query: PUSH_MUTATION,
    variables: { input: { modelName, source: null } },
  });
  const part = (name: string, value: string) =>
    `--${BOUNDARY}\r\ncontent-disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
  return Buffer.from(
    `${part("operations", operations)}${part("map", JSON.stringify({ "0": ["variables.input.source"] }))}` +
      `--${BOUNDARY}\r\ncontent-disposition: form-data; name="0"; filename="model.tar.gz"\r\ncontent-type: application/gzip\r\n\r\n`,
  );
}

const MULTIPART = {
  "content-type": `multipart/form-data; boundary=${BOUNDARY}`,
  "graphql-require-preflight": "1",
};

async function modelNames(): Promise<string[]> {
  const data = await gql(hangar, "{ models(first: 500) { edges { node { name } } } }");
  return data.models.edges.map((e: { node: { name: string } }) => e.node.name);
}

describe("uploads", () => {
  it("takes an upload within the limit and leaves no temporary file behind", async () => {
    const archive = await pack(
      await modelFolder({ "model.mjs": "export default class M { predict() { return 1; } }" }),
    );
    const { body } = await push(hangar, { modelName: "within-limit" }, archive);
    expect(body.data?.pushDeployment).toMatchObject({
      __typename: "Deployment",
      model: { name: "within-limit" },
    });
    await waitFor(async () => (await spoolLeftovers()).length === 0, {
      what: "the spooled upload to be removed",
    });
  });

  it("refuses a declared Content-Length far over the upload limit with 413 at once", async () => {
    const exchange = open({ ...MULTIPART, "content-length": String(MAX_UPLOAD + MAX_BODY + 1024 * 1024) });
    const answer = await exchange.answer;
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error_code: "payload_too_large" });
    await waitFor(() => exchange.closed(), { what: "the server to close the connection" });
    expect(exchange.sent()).toBe(0);
  });

  it("answers INVALID_INPUT on source for a file found over the limit while it streams, and stops reading", async () => {
    const exchange = open({ ...MULTIPART, "transfer-encoding": "chunked" });
    await exchange.chunk(multipartHead("over-the-limit"));
    // gzip's magic bytes, then more than the limit, and the part and the body never end.
    await exchange.chunk(Buffer.from([0x1f, 0x8b]));
    const answer = await sendUnfinished(exchange, randomBytes(16 * 1024), 2 * MAX_UPLOAD);
    expect(answer.status).toBe(200);
    expect(answer.headers.connection).toBe("close");
    expect(JSON.parse(answer.body).data.pushDeployment).toEqual({
      __typename: "UserError",
      code: "INVALID_INPUT",
      field: "source",
      message: "upload exceeds the 195.3 KB limit",
    });
    await waitFor(() => exchange.closed(), { what: "the server to close the connection" });
    // Nothing was created, and nothing of the upload stays on disk.
    expect(await modelNames()).not.toContain("over-the-limit");
    await waitFor(async () => (await spoolLeftovers()).length === 0, {
      what: "the spooled upload to be removed",
    });
  });

  it("answers INVALID_INPUT for an upload over the limit sent with its length (as fetch sends it)", async () => {
    const archive = Buffer.concat([Buffer.from([0x1f, 0x8b]), randomBytes(MAX_UPLOAD)]);
    const { status, body } = await push(hangar, { modelName: "declared-over" }, archive);
    expect(status).toBe(200);
    expect(body.data?.pushDeployment).toMatchObject({ code: "INVALID_INPUT", field: "source" });
    expect(await modelNames()).not.toContain("declared-over");
  });

  it("refuses GraphQL fields over the JSON body limit with 413 while they stream in", async () => {
    const exchange = open({ ...MULTIPART, "transfer-encoding": "chunked" });
    await exchange.chunk(`--${BOUNDARY}\r\ncontent-disposition: form-data; name="operations"\r\n\r\n`);
    const answer = await sendUnfinished(exchange, Buffer.alloc(4096, " "), 3 * MAX_BODY);
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error_code: "payload_too_large" });
  });

  it("answers a malformed multipart body with 400", async () => {
    const exchange = open({ ...MULTIPART, "content-type": "multipart/form-data" });
    await exchange.write("");
    const answer = await exchange.answer;
    expect(answer.status).toBe(400);
    expect(JSON.parse(answer.body)).toMatchObject({ error_code: "client_error" });
    exchange.destroy();
  });
});

describe("uploads with the default limits", () => {
  let defaults: TestHangar;
  beforeAll(async () => {
    defaults = await defaultsStart;
  });
  afterAll(async () => {
    await defaults?.dispose();
  });

  it("takes an upload over yoga's own 25 MB cap, within the 100 MB limit", async () => {
    // Random weights do not compress: the archive is about 30 MB.
    const dir = await modelFolder({ "model.mjs": "export default class M { predict() { return 1; } }" });
    await writeFile(path.join(dir, "weights.bin"), randomBytes(30 * 1024 * 1024));
    const archive = await pack(dir);
    expect(archive.length).toBeGreaterThan(30_000_000);
    const { body } = await push(defaults, { modelName: "heavy" }, archive);
    expect(body.data?.pushDeployment).toMatchObject({ __typename: "Deployment", model: { name: "heavy" } });
  });
});
