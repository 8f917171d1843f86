/**
 * Hostile input against a real server (API.md section 8): thousands of generated
 * malformed HTTP requests and WebSocket handshakes and frames, several connections
 * at a time, while a well-behaved client keeps calling GraphQL and the gateway.
 * No fuzz request may get a 5xx, the good client must see only correct answers,
 * and the process must still be alive at the end.
 *
 * Seeded: the seed is printed; HANGAR_FUZZ_SEED=<seed> repeats a run, and
 * HANGAR_FUZZ_CASES=<n> changes how many cases it generates.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelFolder, pushFolder, waitForStatus } from "../support/client.ts";
import { type FuzzTarget, type HttpCase, httpCase } from "../support/fuzz-http.ts";
import { closeCodeOf, type WsCase, wsCase } from "../support/fuzz-ws.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { rawExchange } from "../support/raw-http.ts";
import { Rng } from "../support/rng.ts";

const SEED = Number(process.env.HANGAR_FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const CASES = Number(process.env.HANGAR_FUZZ_CASES ?? 2500);
/** Connections at a time. */
const PARALLEL = 8;

const ECHO_MODEL = `
export default class Model {
  async load() {}
  async predict(input) { return { echo: input }; }
}
`;
const MODELS_QUERY = "{ models(first: 5) { edges { node { id name } } } }";

/** Close codes a server may end a misbehaving socket with; 1011 and 4500 would be internal errors. */
const CLIENT_FAULT_CLOSE_CODES = new Set([
  1000, 1002, 1005, 1007, 1008, 1009, 4400, 4401, 4403, 4406, 4408, 4429,
]);

/**
 * A code of the application range that Hangar never sends: a mutated close frame of the client's carried
 * it, and the server answers a close with the client's own code (RFC 6455 section 5.5.1).
 */
const echoedClientCode = (code: number) => code >= 3000 && code <= 4999 && code !== 4500;

let hangar: TestHangar;
let target: FuzzTarget;
let port: number;

beforeAll(async () => {
  console.log(`fuzz seed ${SEED} (repeat with HANGAR_FUZZ_SEED=${SEED}), ${CASES} cases`);
  hangar = await startHangar();
  const deployment = await pushFolder(hangar, "echo", await modelFolder({ "model.mjs": ECHO_MODEL }));
  await waitForStatus(hangar, deployment.id, "ACTIVE");
  port = Number(new URL(hangar.url).port);
  target = {
    host: `127.0.0.1:${port}`,
    key: hangar.key,
    modelId: deployment.model.id,
    deploymentId: deployment.id,
  };
});

afterAll(async () => {
  await hangar?.dispose();
});

interface Finding {
  kind: string;
  problem: string;
  request: string;
}

/** The first bytes of what was sent, readable in a failure message. */
function preview(parts: Buffer[]): string {
  return JSON.stringify(Buffer.concat(parts).subarray(0, 300).toString("latin1"));
}

const FIVE_XX = /(?:^|\r\n)HTTP\/1\.[01] 5\d\d /;

async function runHttp(c: HttpCase, statuses: Map<number, number>, findings: Finding[]): Promise<void> {
  const pipeline = c.expected !== undefined;
  const got = await rawExchange(port, c.parts, {
    deadlineMs: pipeline ? 8_000 : 4_000,
    heads: c.heads ?? 0,
    // Half-close once the answers are in (or, for input the server waits on, once it is quiet),
    // so that a request cut short is seen to end.
    endAfter: pipeline ? c.expected?.length : (c.messages ?? 1),
    idleEndMs: pipeline ? undefined : 300,
  });
  for (const r of got.responses) statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
  const report = (problem: string) => findings.push({ kind: c.kind, problem, request: preview(c.parts) });
  const fiveXX = got.responses.find((r) => r.status >= 500);
  if (fiveXX) report(`answered ${fiveXX.status}: ${fiveXX.body.toString().slice(0, 300)}`);
  else if (FIVE_XX.test(got.raw.toString("latin1")))
    report(`a 5xx status line in ${JSON.stringify(got.raw.toString("latin1").slice(0, 300))}`);
  if (pipeline) {
    const expected = c.expected ?? [];
    const actual = got.responses.slice(0, expected.length).map((r) => r.status);
    if (JSON.stringify(actual) !== JSON.stringify(expected)) {
      report(`pipelined answers ${JSON.stringify(actual)}, expected ${JSON.stringify(expected)} first`);
    }
    for (const [i, text] of (c.expectedBodies ?? []).entries()) {
      const body = got.responses[i]?.body.toString() ?? "";
      if (text !== null && got.responses[i] && !body.includes(text)) {
        report(`pipelined answer ${i} is ${JSON.stringify(body.slice(0, 200))}, expected it to hold ${text}`);
      }
    }
    // What follows may or may not be well-formed after all (a mutation can miss): no 5xx is all it owes.
  }
}

async function runWs(c: WsCase, closeCodes: Map<string, number>, findings: Finding[]): Promise<void> {
  // The last part, a frame no server may take, waits until the server is quiet: sent at once, its
  // 1002 would arrive before the outcome of a slower message before it (an internal error, say).
  const got = await rawExchange(port, c.parts, { deadlineMs: 6_000, holdLastMs: c.valid ? 200 : undefined });
  const raw = got.raw;
  const headEnd = raw.indexOf("\r\n\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(raw.toString("latin1"))?.[1] ?? 0);
  const report = (problem: string) => findings.push({ kind: c.kind, problem, request: preview(c.parts) });
  if (status >= 500) report(`handshake answered ${status}`);
  if (c.valid && status !== 101) report(`valid handshake answered ${status || "nothing"}`);
  const code = status === 101 ? closeCodeOf(raw.subarray(headEnd + 4)) : null;
  // A close frame is the server's part of closing (ws then waits for the client's); a mutated
  // frame may declare a long payload, which the server may wait for like any slow client.
  if (c.mustClose && !got.closed && code === null) report("the server kept a misbehaving socket open");
  if (status === 101) {
    const label = code === null ? "closed without a close frame" : String(code);
    closeCodes.set(label, (closeCodes.get(label) ?? 0) + 1);
    if (code !== null && !CLIENT_FAULT_CLOSE_CODES.has(code) && !echoedClientCode(code)) {
      report(`closed with code ${code}`);
    }
  } else {
    closeCodes.set(`handshake ${status}`, (closeCodes.get(`handshake ${status}`) ?? 0) + 1);
  }
}

/** The well-behaved client: GraphQL queries and predictions, each answer checked, until stopped. */
async function goodClient(stop: { done: boolean }, problems: string[]): Promise<number> {
  let answered = 0;
  for (let i = 0; !stop.done; i++) {
    try {
      if (i % 2 === 0) {
        const response = await fetch(`${hangar.url}/graphql`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
          body: JSON.stringify({ query: MODELS_QUERY }),
        });
        const body = (await response.json()) as {
          data?: { models: { edges: { node: { id: string; name: string } }[] } };
        };
        const nodes = body.data?.models.edges.map((e) => e.node);
        if (
          response.status !== 200 ||
          JSON.stringify(nodes) !== JSON.stringify([{ id: target.modelId, name: "echo" }])
        ) {
          problems.push(`GraphQL answered ${response.status} ${JSON.stringify(body).slice(0, 300)}`);
        }
      } else {
        const path = `/models/${target.modelId}/deployments/${target.deploymentId}/predict`;
        const response = await fetch(`${hangar.url}${path}`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
          body: JSON.stringify({ i }),
        });
        const body = await response.text();
        if (response.status !== 200 || body !== JSON.stringify({ echo: { i } })) {
          problems.push(`predict ${i} answered ${response.status} ${body.slice(0, 300)}`);
        }
        if (response.headers.get("x-hangar-deployment-id") !== target.deploymentId) {
          problems.push(`predict ${i} came from ${response.headers.get("x-hangar-deployment-id")}`);
        }
      }
      answered++;
    } catch (error) {
      problems.push(`good request ${i} failed: ${(error as Error).message}`);
    }
  }
  return answered;
}

describe("hostile input", () => {
  it("answers an upload cut off inside its file with 400, and lives on", async () => {
    // Found by the fuzz: the file stream's 'error' came before anything listened to it, and ended the process.
    const boundary = "cut";
    const body =
      `--${boundary}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n` +
      `${JSON.stringify({ query: "mutation($input: PushDeploymentInput!) { pushDeployment(input: $input) { __typename } }", variables: { input: { modelName: "cut", source: null } } })}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":["variables.input.source"]}\r\n` +
      `--${boundary}\r\nContent-Disposition: form-data; name="0"; filename="m.tgz"\r\n\r\n${"x".repeat(500)}`;
    for (let i = 0; i < 20; i++) {
      const got = await rawExchange(
        port,
        [
          `POST /graphql HTTP/1.1\r\nHost: ${target.host}\r\nAuthorization: Bearer ${hangar.key}\r\n` +
            `Content-Type: multipart/form-data; boundary=${boundary}\r\ngraphql-require-preflight: 1\r\n` +
            `Content-Length: ${body.length}\r\n\r\n${body}`,
        ],
        { expect: 1 },
      );
      expect(got.responses.map((r) => r.status)).toEqual([400]);
    }
    expect((await fetch(`${hangar.url}/healthz`)).status).toBe(200);
    expect(hangar.process.exitCode).toBeNull();
  });

  it("survives thousands of malformed requests and frames with no 5xx, and good clients get correct answers", async () => {
    const rng = new Rng(SEED);
    // Generated up front from the seed alone, so a run repeats whatever the timing.
    const cases: ({ http: HttpCase } | { ws: WsCase })[] = [];
    for (let i = 0; i < CASES; i++) {
      cases.push(rng.chance(0.15) ? { ws: wsCase(rng, target) } : { http: httpCase(rng, target) });
    }
    const statuses = new Map<number, number>();
    const closeCodes = new Map<string, number>();
    const findings: Finding[] = [];
    const goodProblems: string[] = [];
    const stop = { done: false };
    const good = goodClient(stop, goodProblems);
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        for (let c = cases[next++]; c !== undefined; c = cases[next++]) {
          if ("http" in c) await runHttp(c.http, statuses, findings);
          else await runWs(c.ws, closeCodes, findings);
        }
      }),
    );
    stop.done = true;
    const goodAnswers = await good;
    console.log(
      `fuzz seed ${SEED}: ${CASES} cases in ${Date.now() - started} ms; statuses ${JSON.stringify(
        Object.fromEntries([...statuses].sort(([a], [b]) => a - b)),
      )}; WebSocket endings ${JSON.stringify(Object.fromEntries(closeCodes))}; ${goodAnswers} good answers`,
    );
    // What the fuzz made the server log as errors: client faults must not show up as the server's own
    // (structured error lines, or graphql-ws's "Internal error ..." on stderr).
    const errors = new Map<string, number>();
    for (const line of hangar.output().split("\n")) {
      let msg: string | null = null;
      if (/^\{.*"level":(50|60)[,}]/.test(line)) {
        const entry = JSON.parse(line) as { msg?: string; err?: { type?: string; message?: string } };
        msg = `${entry.msg ?? ""}${entry.err ? ` (${entry.err.type}: ${entry.err.message})` : ""}`;
      } else if (line.startsWith("Internal error")) msg = line.slice(0, 200);
      if (msg !== null) errors.set(msg, (errors.get(msg) ?? 0) + 1);
    }
    expect(findings.slice(0, 10), `seed ${SEED}: ${findings.length} findings`).toEqual([]);
    expect(Object.fromEntries(errors), `seed ${SEED}: server error log lines`).toEqual({});
    expect(goodProblems.slice(0, 10), `seed ${SEED}`).toEqual([]);
    expect(goodAnswers).toBeGreaterThan(20);
    // The fuzz reached past the parsers: answers from the handlers, not only refusals.
    expect(statuses.get(400)).toBeGreaterThan(0);
    expect(statuses.get(200)).toBeGreaterThan(0);
    expect(closeCodes.size).toBeGreaterThan(3);

    expect(hangar.process.exitCode).toBeNull();
    expect(hangar.process.signalCode).toBeNull();
    const health = await fetch(`${hangar.url}/healthz`);
    expect(health.status).toBe(200);
  }, 180_000);
});
