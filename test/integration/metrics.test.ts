// GET /metrics (API.md section 11): the Prometheus exposition, parsed with a Prometheus text-format
// parser after known traffic through the gateway; and the request id on every answer.
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { createKey } from "../support/keys.ts";
import { finished, promoteTo } from "../support/promotions.ts";

const MODEL = {
  "model.mjs": `export default class M {
  async predict(input) {
    if (input.fail) throw new Error("asked to fail");
    if (input.sleepMs) await new Promise((resolve) => setTimeout(resolve, input.sleepMs));
    return { ok: true };
  }
}`,
};

let hangar: TestHangar;
let dep: { id: string; model: { id: string } };

beforeAll(async () => {
  hangar = await startHangar();
  dep = await pushFolder(hangar, "metered", await modelFolder(MODEL));
  await waitForStatus(hangar, dep.id, "ACTIVE");
  const promotion = await promoteTo(hangar, dep.id);
  expect((await finished(hangar, promotion.id)).status).toBe("SUCCEEDED");
});

afterAll(async () => {
  await hangar?.dispose();
});

async function scrape(key = hangar.key) {
  return fetch(`${hangar.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
}

describe("GET /metrics", () => {
  it("counts each answer by deployment, environment and status, with plausible latencies", async () => {
    const deploymentPath = `/models/${dep.model.id}/deployments/${dep.id}/predict`;
    const productionPath = `/models/${dep.model.id}/predict`;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await predict(hangar, deploymentPath, { n: i })).status);
    for (let i = 0; i < 2; i++) {
      statuses.push((await predict(hangar, deploymentPath, { fail: true, sleepMs: 0 })).status);
    }
    for (let i = 0; i < 2; i++)
      statuses.push((await predict(hangar, productionPath, { sleepMs: 120 })).status);
    expect(statuses).toEqual([200, 200, 200, 500, 500, 200, 200]);
    // An answer no deployment was chosen for is not counted.
    expect((await predict(hangar, `/models/${dep.model.id}/environments/nope/predict`, {})).status).toBe(404);

    const response = await scrape();
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const families = parsePrometheusTextFormat(text);
    const family = (name: string) => families.find((f) => f.name === name);

    const requests = family("hangar_gateway_requests_total");
    expect(requests?.type).toBe("COUNTER");
    const counted = (requests?.metrics ?? []).map((m) => ({ ...m.labels, value: Number(m.value) }));
    const base = { model: dep.model.id, deployment: dep.id };
    expect(counted).toEqual(
      expect.arrayContaining([
        { ...base, environment: "", code: "200", value: 3 },
        { ...base, environment: "", code: "500", value: 2 },
        { ...base, environment: "production", code: "200", value: 2 },
      ]),
    );
    expect(counted).toHaveLength(3);

    const duration = family("hangar_gateway_request_duration_seconds");
    expect(duration?.type).toBe("HISTOGRAM");
    // The parser merges a histogram's labelled series into one, so its samples are read line by line.
    const production = histogram(text, "hangar_gateway_request_duration_seconds", {
      ...base,
      environment: "production",
    });
    expect(production.count).toBe(2);
    // Each took its 120 ms sleep and little more: none within 100 ms, both within 1 s.
    expect(production.buckets.get("0.1")).toBe(0);
    expect(production.buckets.get("1")).toBe(2);
    expect(production.buckets.get("+Inf")).toBe(2);
    expect(production.sum).toBeGreaterThanOrEqual(0.24);
    const direct = histogram(text, "hangar_gateway_request_duration_seconds", { ...base, environment: "" });
    expect(direct.count).toBe(5);
    expect(direct.buckets.get("0.1")).toBe(5);
    // Buckets from 1 ms to 60 s (metrics/latency.ts).
    expect([...direct.buckets.keys()]).toEqual([
      "0.001",
      "0.0025",
      "0.005",
      "0.01",
      "0.025",
      "0.05",
      "0.1",
      "0.25",
      "0.5",
      "1",
      "2.5",
      "5",
      "10",
      "30",
      "60",
      "+Inf",
    ]);

    // The process's own metrics are there too.
    expect(family("process_cpu_user_seconds_total")?.type).toBe("COUNTER");
    expect(family("nodejs_heap_size_used_bytes")?.type).toBe("GAUGE");
  });

  it("takes a key that may read every model; others get 401 or 403", async () => {
    expect((await fetch(`${hangar.url}/metrics`)).status).toBe(401);
    expect((await scrape("hk_wrongwrongwrongwrongwrongwrongwrongwrong")).status).toBe(401);
    const viewer = await createKey(hangar, { name: "scraper", role: "VIEWER" });
    expect((await scrape(viewer.secret)).status).toBe(200);
    const inference = await createKey(hangar, { name: "caller", role: "INFERENCE" });
    const limited = await createKey(hangar, {
      name: "one-model",
      role: "DEPLOYER",
      modelIds: [dep.model.id],
    });
    for (const key of [inference, limited]) {
      const refused = await scrape(key.secret);
      expect(refused.status).toBe(403);
      expect(await refused.json()).toMatchObject({ error_code: "forbidden" });
    }
    const post = await fetch(`${hangar.url}/metrics`, {
      method: "POST",
      headers: { authorization: `Bearer ${hangar.key}` },
    });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
  });
});

/** A server command that answers with the request id it was sent. */
const ECHO_ID_SERVER = {
  "hangar.json": JSON.stringify({ server: { command: "node server.mjs" } }),
  "server.mjs": `import http from "node:http";
http.createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ seen: req.headers["x-request-id"] ?? null }));
  });
}).listen(Number(process.env.PORT), "127.0.0.1");
`,
};

describe("x-request-id", () => {
  it("is the client's when well-formed, else a new one, on gateway and /graphql answers and at the replica", async () => {
    const echo = await pushFolder(hangar, "echo-id", await modelFolder(ECHO_ID_SERVER));
    await waitForStatus(hangar, echo.id, "ACTIVE");
    const call = (id?: string) =>
      fetch(`${hangar.url}/models/${echo.model.id}/deployments/${echo.id}/predict`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${hangar.key}`,
          ...(id === undefined ? {} : { "x-request-id": id }),
        },
        body: "{}",
      });
    const given = await call("trace-01.A_b");
    expect(given.headers.get("x-request-id")).toBe("trace-01.A_b");
    expect(await given.json()).toEqual({ seen: "trace-01.A_b" });

    for (const bad of [undefined, "has space", "x".repeat(129), "semi;colon"]) {
      const answer = await call(bad);
      const id = answer.headers.get("x-request-id");
      expect(id).toMatch(/^[A-Za-z0-9._-]{1,128}$/);
      expect(id).not.toBe(bad);
      // The replica saw the same new id.
      expect(await answer.json()).toEqual({ seen: id });
    }
    const first = (await call()).headers.get("x-request-id");
    const second = (await call()).headers.get("x-request-id");
    expect(first).not.toBe(second);

    // A gateway error and a refusal carry it too, and so does /graphql.
    const missing = await fetch(`${hangar.url}/models/${echo.model.id}/environments/nope/predict`, {
      method: "POST",
      headers: { authorization: `Bearer ${hangar.key}`, "x-request-id": "err-1" },
      body: "{}",
    });
    expect(missing.status).toBe(404);
    expect(missing.headers.get("x-request-id")).toBe("err-1");
    const refused = await fetch(`${hangar.url}/models/${echo.model.id}/predict`, {
      method: "POST",
      headers: { "x-request-id": "no-key" },
      body: "{}",
    });
    expect(refused.status).toBe(401);
    expect(refused.headers.get("x-request-id")).toBe("no-key");
    const graphql = await fetch(`${hangar.url}/graphql`, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${hangar.key}`,
        "x-request-id": "gql-7",
      },
      body: JSON.stringify({ query: "{ viewer { name } }" }),
    });
    expect(graphql.status).toBe(200);
    expect(graphql.headers.get("x-request-id")).toBe("gql-7");
    const fresh = await fetch(`${hangar.url}/graphql`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${hangar.key}` },
      body: JSON.stringify({ query: "{ viewer { name } }" }),
    });
    expect(fresh.headers.get("x-request-id")).toMatch(/^[A-Za-z0-9._-]{1,128}$/);
  });
});

/** One labelled series of a histogram in the text format: its buckets (by `le`, in order), sum and count. */
function histogram(text: string, name: string, labels: Record<string, string>) {
  const buckets = new Map<string, number>();
  let sum = Number.NaN;
  let count = Number.NaN;
  for (const line of text.split("\n")) {
    const match = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!match?.[1]?.startsWith(name)) continue;
    const pairs = new Map([...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).some(([key, value]) => pairs.get(key) !== value)) continue;
    const value = Number(match[3]);
    if (match[1] === `${name}_bucket`) buckets.set(pairs.get("le") ?? "", value);
    else if (match[1] === `${name}_sum`) sum = value;
    else if (match[1] === `${name}_count`) count = value;
  }
  return { buckets, sum, count };
}
