// GET /metrics (API.md section 11): the Prometheus exposition, parsed with a Prometheus text-format
// parser after known traffic through the gateway; and the request id on every answer.
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gql, modelFolder, predict, pushFolder, waitForStatus } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { createKey } from "../support/keys.ts";
import {
  control,
  createEnvironment,
  finished,
  promoteTo,
  promotionOf,
  reachedStage,
} from "../support/promotions.ts";
import { waitFor } from "../support/wait.ts";

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

    // The replica this member runs, and the promotion it ran (no canary runs now: no canary series).
    const replicas = (family("hangar_replicas")?.metrics ?? []).map((m) => ({
      ...m.labels,
      value: Number(m.value),
    }));
    expect(replicas).toContainEqual({ ...base, state: "READY", value: 1 });
    const promotions = (family("hangar_promotions_total")?.metrics ?? []).map((m) => ({
      ...m.labels,
      value: Number(m.value),
    }));
    expect(promotions).toEqual([
      { model: dep.model.id, environment: "production", status: "SUCCEEDED", value: 1 },
    ]);
    expect(family("hangar_canary_traffic_percent")?.metrics ?? []).toEqual([]);

    // The same answers in the API's figures: every path of the deployment, and production's alone.
    const figures = await gql(
      hangar,
      `query($id: ID!, $modelId: ID!) {
        deployment(id: $id) {
          metrics(windowSeconds: 600) { windowSeconds requests errors requestsPerSecond latencyMs { p50 p95 p99 } coldStarts }
          metricsSeries(windowSeconds: 600, stepSeconds: 60) { at requests errors }
        }
        environment(modelId: $modelId, name: "production") {
          metrics(windowSeconds: 600) { requests errors latencyMs { p50 p99 } }
        }
      }`,
      { id: dep.id, modelId: dep.model.id },
    );
    const { metrics, metricsSeries } = figures.deployment;
    expect(metrics).toMatchObject({ windowSeconds: 600, requests: 7, errors: 2, coldStarts: 0 });
    expect(metrics.requestsPerSecond).toBeCloseTo(7 / 600, 6);
    expect(metrics.latencyMs.p50).toBeGreaterThan(0);
    // The two slow answers are the slowest: the 99th percentile lies in their bucket (100 to 250 ms).
    expect(metrics.latencyMs.p99).toBeGreaterThan(100);
    expect(metrics.latencyMs.p99).toBeLessThanOrEqual(250);
    expect(metricsSeries).toHaveLength(10);
    expect(metricsSeries.reduce((sum: number, p: { requests: number }) => sum + p.requests, 0)).toBe(7);
    expect(metricsSeries.reduce((sum: number, p: { errors: number }) => sum + p.errors, 0)).toBe(2);
    const throughProduction = figures.environment.metrics;
    expect(throughProduction).toMatchObject({ requests: 2, errors: 0 });
    expect(throughProduction.latencyMs.p50).toBeGreaterThan(100);
    expect(throughProduction.latencyMs.p50).toBeLessThanOrEqual(250);
  });

  it("shows a canary's share while it ramps, and counts the promotion's end by its outcome", async () => {
    const envId = await createEnvironment(hangar, {
      modelId: dep.model.id,
      name: "staging",
      promotionSettings: { rampUpWhilePromoting: true, rampUpDurationSeconds: 60 },
    });
    const first = await promoteTo(hangar, dep.id, "staging");
    expect((await finished(hangar, first.id)).status).toBe("SUCCEEDED");
    const next = await pushFolder(hangar, "metered", await modelFolder(MODEL));
    await waitForStatus(hangar, next.id, "ACTIVE");
    const ramp = await promoteTo(hangar, next.id, "staging");
    await reachedStage(hangar, ramp.id, 1);
    expect((await control(hangar, "pausePromotion", envId)).status).toBe("PAUSED");
    const paused = await promotionOf(hangar, ramp.id);
    const samples = async (name: string) =>
      (
        parsePrometheusTextFormat(await (await scrape()).text()).find((f) => f.name === name)?.metrics ?? []
      ).map((m): Record<string, string | number> => ({ ...m.labels, value: Number(m.value) }));
    const staging = { model: dep.model.id, environment: "staging" };
    // The pause is reported with the promotion's next event: the gauge follows it.
    await waitFor(
      async () => {
        const canary = await samples("hangar_canary_traffic_percent");
        return canary.some(
          (c) => c.environment === "staging" && c.value === paused.percentTrafficToNewVersion,
        );
      },
      { what: "the paused share in hangar_canary_traffic_percent" },
    );
    expect(paused.percentTrafficToNewVersion).toBeGreaterThan(0);
    expect((await control(hangar, "cancelPromotion", envId)).status).toBe("CANCELED");
    await waitFor(
      async () => {
        const ended = await samples("hangar_promotions_total");
        return ended.some((p) => p.environment === "staging" && p.status === "CANCELED" && p.value === 1);
      },
      { what: "the canceled promotion in hangar_promotions_total" },
    );
    expect(await samples("hangar_promotions_total")).toEqual(
      expect.arrayContaining([
        { ...staging, status: "SUCCEEDED", value: 1 },
        { ...staging, status: "CANCELED", value: 1 },
      ]),
    );
    expect(
      (await samples("hangar_canary_traffic_percent")).filter((c) => c.environment === "staging"),
    ).toEqual([]);
  });

  it("records a wake-up a request caused as one cold start, with its phases, however many requests it held", async () => {
    const sleepy = await pushFolder(
      hangar,
      "sleepy",
      await modelFolder({
        "model.mjs": `export default class M {
  async load() { await new Promise((resolve) => setTimeout(resolve, 200)); }
  async predict() { return { ok: true }; }
}`,
      }),
    );
    await waitForStatus(hangar, sleepy.id, "ACTIVE");
    const settings = await gql(
      hangar,
      `mutation($id: ID!) {
        updateAutoscalingSettings(input: { deploymentId: $id, settings: { scaleDownDelay: 1 } }) { __typename }
      }`,
      { id: sleepy.id },
    );
    expect(settings.updateAutoscalingSettings.__typename).toBe("Deployment");
    await waitForStatus(hangar, sleepy.id, "SCALED_TO_ZERO", 15_000);
    const path = `/models/${sleepy.model.id}/deployments/${sleepy.id}/predict`;
    const answers = await Promise.all(Array.from({ length: 5 }, () => predict(hangar, path, {})));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200]);

    const query = `query($id: ID!) { deployment(id: $id) {
      metrics(windowSeconds: 300) { requests coldStarts coldStartMs { p50 } }
      coldStarts(first: 5) { requestedAt processStartedAt modelLoadedAt answeredAt durationMs replicaId }
    } }`;
    // Counted once its answer went, and written with the member's next write of its counts.
    interface Found {
      metrics: { requests: number; coldStarts: number; coldStartMs: { p50: number } };
      coldStarts: Record<
        "requestedAt" | "processStartedAt" | "modelLoadedAt" | "answeredAt" | "replicaId",
        string
      >[] &
        { durationMs: number }[];
    }
    const { metrics, coldStarts } = await waitFor(
      async () => {
        const found: Found = (await gql(hangar, query, { id: sleepy.id })).deployment;
        return found.coldStarts.length > 0 && found.metrics.coldStarts > 0 ? found : null;
      },
      { what: "the cold start's record" },
    );
    expect(metrics).toMatchObject({ requests: 5, coldStarts: 1 });
    // Its load() alone takes 200 ms.
    expect(metrics.coldStartMs.p50).toBeGreaterThan(100);
    expect(coldStarts).toHaveLength(1);
    const [start] = coldStarts;
    const at = (text: string) => new Date(text).getTime();
    expect(start?.replicaId).toMatch(/^rep_/);
    const phases = [start?.requestedAt, start?.processStartedAt, start?.modelLoadedAt, start?.answeredAt].map(
      (t) => at(t as string),
    );
    expect([...phases].sort((a, b) => a - b)).toEqual(phases);
    expect((phases[2] as number) - (phases[1] as number)).toBeGreaterThanOrEqual(200);
    expect(start?.durationMs).toBeGreaterThanOrEqual(200);

    const text = await (await scrape()).text();
    const cold = histogram(text, "hangar_cold_start_seconds", {
      model: sleepy.model.id,
      deployment: sleepy.id,
    });
    expect(cold.count).toBe(1);
    expect(cold.sum).toBeGreaterThanOrEqual(0.2);
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
