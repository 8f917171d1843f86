/**
 * The gateway's side of API.md section 8: a replica's answer over HANGAR_MAX_RESPONSE_BYTES (502
 * response_too_large when declared, a reset connection and a 5xx for the traffic meter when streamed
 * past it), answers streamed to the client rather than buffered, and a client that goes away
 * cancelling its request to the replica.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { steadyClient, stopSteadyClients } from "../support/load.ts";
import { createEnvironment, finished, promoteTo } from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

const MAX_RESPONSE = 200_000;

/** Hangar's JavaScript model server: it declares every answer's length. */
const DECLARING_MODEL = {
  "model.mjs": `export default class M {
  predict(input) { return { blob: "x".repeat(input.size ?? 0) }; }
}`,
};

/**
 * A server command (any language may be one; this one is node) whose answers are streamed without a
 * length, that fails as asked, and that holds a request as long as its client stays, saying in its
 * log when the client went away.
 */
const STREAMING_SERVER = {
  "hangar.json": JSON.stringify({ server: { command: "node server.mjs" } }),
  "server.mjs": `import http from "node:http";
const json = { "content-type": "application/json" };
http.createServer((req, res) => {
  if (req.method === "GET") { res.writeHead(200, json); return res.end('{"status":"ok"}'); }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => {
    const input = JSON.parse(Buffer.concat(chunks).toString() || "{}");
    if (input.fail) { res.writeHead(500, { "content-type": "text/plain" }); return res.end("boom: " + input.fail); }
    if (input.busy) {
      res.writeHead(503, json);
      return res.end(JSON.stringify({ error: "busy right now", error_code: "overloaded" }));
    }
    if (input.wait) {
      console.log("waiting " + input.tag);
      const timer = setTimeout(() => { res.writeHead(200, json); res.end('{"waited":true}'); }, 55000);
      res.on("close", () => {
        clearTimeout(timer);
        if (!res.writableFinished) console.log("client went away " + input.tag);
      });
      return;
    }
    // A JSON string of input.bytes characters, written in pieces with no Content-Length (chunked).
    res.writeHead(200, json);
    const piece = "x".repeat(16384);
    let left = input.bytes ?? 0;
    res.write('"');
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, piece.length);
        left -= n;
        if (!res.write(piece.slice(0, n))) return void res.once("drain", pump);
      }
      res.end('"');
    };
    pump();
  });
}).listen(Number(process.env.PORT), "127.0.0.1");
`,
};

let hangar: TestHangar;
let declaring: { id: string; model: { id: string } };
let streaming: { id: string; model: { id: string } };

const pathOf = (d: { id: string; model: { id: string } }) =>
  `/models/${d.model.id}/deployments/${d.id}/predict`;

beforeAll(async () => {
  hangar = await startHangar({
    env: {
      HANGAR_MAX_RESPONSE_BYTES: String(MAX_RESPONSE),
      HANGAR_PREDICT_TIMEOUT: "60",
      HANGAR_AUTOSCALER_INTERVAL_MS: "100",
    },
  });
  declaring = await pushFolder(hangar, "declaring", await modelFolder(DECLARING_MODEL));
  streaming = await pushFolder(hangar, "streaming", await modelFolder(STREAMING_SERVER));
  await Promise.all([
    waitForStatus(hangar, declaring.id, "ACTIVE"),
    waitForStatus(hangar, streaming.id, "ACTIVE"),
  ]);
});

afterEach(stopSteadyClients);

afterAll(async () => {
  await hangar?.dispose();
});

/** A predict whose body is read to the end, or the reason it could not be. */
async function fetchWhole(urlPath: string, body: unknown) {
  const response = await fetch(`${hangar.url}${urlPath}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
    body: JSON.stringify(body),
  });
  try {
    return { status: response.status, headers: response.headers, text: await response.text(), reset: false };
  } catch {
    return { status: response.status, headers: response.headers, text: "", reset: true };
  }
}

async function logLines(deploymentId: string): Promise<string[]> {
  const data = await gql(hangar, `query($id: ID!) { deployment(id: $id) { logs(last: 500) { line } } }`, {
    id: deploymentId,
  });
  return data.deployment.logs.map((l: { line: string }) => l.line);
}

describe("answers within the limit", () => {
  it("relays a declared answer and a streamed one whole, the streamed one as it comes (no length)", async () => {
    const declared = await fetchWhole(pathOf(declaring), { size: MAX_RESPONSE - 100 });
    expect(declared.status).toBe(200);
    expect(JSON.parse(declared.text).blob).toHaveLength(MAX_RESPONSE - 100);
    expect(declared.headers.get("content-length")).toBe(String(declared.text.length));

    const streamed = await fetchWhole(pathOf(streaming), { bytes: MAX_RESPONSE - 2 });
    expect(streamed).toMatchObject({ status: 200, reset: false });
    expect(streamed.text).toBe(`"${"x".repeat(MAX_RESPONSE - 2)}"`);
    expect(streamed.headers.get("content-length")).toBeNull();
    expect(streamed.headers.get("x-hangar-deployment-id")).toBe(streaming.id);
  });

  it("passes a server command's 5xx on as application_error with its message, and Hangar-shaped ones as they are", async () => {
    expect(await predict(hangar, pathOf(streaming), { fail: "no weights" })).toMatchObject({
      status: 500,
      body: { error_code: "application_error", error: "boom: no weights" },
      deploymentId: streaming.id,
    });
    expect(await predict(hangar, pathOf(streaming), { busy: true })).toMatchObject({
      status: 503,
      body: { error_code: "overloaded", error: "busy right now" },
      deploymentId: streaming.id,
    });
  });
});

describe("answers over the limit", () => {
  it("answers 502 response_too_large for an answer declared over the limit", async () => {
    const answer = await predict(hangar, pathOf(declaring), { size: MAX_RESPONSE + 1 });
    expect(answer).toMatchObject({
      status: 502,
      body: { error_code: "response_too_large" },
      deploymentId: declaring.id,
    });
  });

  it("resets the client's connection when a streamed answer passes the limit, and serves the next one", async () => {
    const cut = await fetchWhole(pathOf(streaming), { bytes: 5 * MAX_RESPONSE });
    expect(cut.status).toBe(200);
    expect(cut.reset).toBe(true);
    const next = await fetchWhole(pathOf(streaming), { bytes: 10 });
    expect(next).toMatchObject({ status: 200, reset: false, text: `"${"x".repeat(10)}"` });
  });

  it("counts an answer cut at the limit as a 5xx: a canary that answers so is rolled back on its error rate", async () => {
    const first = await pushFolder(hangar, "counted", await modelFolder(DECLARING_MODEL));
    await createEnvironment(hangar, {
      modelId: first.model.id,
      name: "live",
      promotionSettings: {
        rampUpWhilePromoting: true,
        rampUpDurationSeconds: 10,
        errorRateThresholdPercent: 20,
      },
    });
    expect((await finished(hangar, (await promoteTo(hangar, first.id, "live")).id)).status).toBe("SUCCEEDED");
    // Every answer of the candidate passes the limit while it streams: each is cut off (HTTP 200 on the wire).
    const oversized = {
      ...STREAMING_SERVER,
      "server.mjs": STREAMING_SERVER["server.mjs"].replace(
        "let left = input.bytes ?? 0;",
        `let left = ${5 * MAX_RESPONSE};`,
      ),
    };
    const candidate = await pushFolder(hangar, "counted", await modelFolder(oversized));
    await waitForStatus(hangar, candidate.id, "ACTIVE");
    const client = steadyClient(hangar, `/models/${first.model.id}/environments/live/predict`, 3);
    const promotion = await promoteTo(hangar, candidate.id, "live");
    const ended = await finished(hangar, promotion.id);
    await client.stop();
    expect(ended.status).toBe("FAILED");
    expect(ended.errorMessage).toMatch(/of the new deployment's requests failed/);
    // The candidate's answers began and were cut (status 0 here), never passed as whole answers.
    const candidates = client.answers.filter((a) => a.deploymentId === candidate.id);
    expect(candidates.length).toBeGreaterThan(0);
    expect(candidates.filter((a) => a.status !== 0)).toEqual([]);
  });
});

describe("a client that goes away", () => {
  it("cancels its request to the replica, whose in-flight count drops (it deactivates at once)", async () => {
    const waiter = await pushFolder(hangar, "waiter", await modelFolder(STREAMING_SERVER));
    await waitForStatus(hangar, waiter.id, "ACTIVE");
    const leaving = new AbortController();
    const request = fetch(`${hangar.url}${pathOf(waiter)}`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
      body: JSON.stringify({ wait: true, tag: "t1" }),
      signal: leaving.signal,
    }).catch((error: Error) => error);
    await waitFor(async () => (await logLines(waiter.id)).includes("waiting t1"), {
      what: "the request to reach the replica",
    });
    leaving.abort();
    expect(await request).toBeInstanceOf(Error);
    // The replica would otherwise hold the request for 55 s, and the gateway wait for it for 60.
    await waitFor(async () => (await logLines(waiter.id)).includes("client went away t1"), {
      what: "the replica to see its request cancelled",
      timeoutMs: 15_000,
    });
    // Deactivating waits for the replica's in-flight requests: with none left it is quick.
    await gql(hangar, `mutation($id: ID!) { deactivateDeployment(id: $id) { __typename } }`, {
      id: waiter.id,
    });
    await waitForStatus(hangar, waiter.id, "INACTIVE", 15_000);
  });
});
