/**
 * The Prometheus exposition (API.md section 11): `GET /metrics`, through prom-client. Each member
 * exposes its own counts; the gateway's answers are counted at the member that received the request,
 * and only answers a deployment was chosen for. Labels are IDs (`environment` is a name, empty on
 * deployment and development paths). The histogram's buckets are metrics/latency.ts's, in seconds, so
 * these figures and the shared per-second counts agree.
 *
 * The gateway's answers are counted here in plain numbers and handed to prom-client's registry, which
 * formats them, only when scraped: a prom-client child's inc() and observe() hash their label set on
 * every call, which cost the gateway a fifth of its own work per request.
 */
import { collectDefaultMetrics, type Metric, type MetricObjectWithValues, Registry } from "prom-client";
import { countLatency, emptyLatencyCounts, LATENCY_BOUNDS_MS, type LatencyCounts } from "./latency.ts";

/** The gateway's answers, as it reports them (gateway/gateway.ts). */
export interface GatewayAnswers {
  /** One answer to a request for `deploymentId` of `modelId` through `environment` ("" for none). */
  answered(modelId: string, deploymentId: string, environment: string, status: number, ms: number): void;
  /** A cold start (API.md section 11) of the deployment ended with its answer, `seconds` after its request. */
  coldStarted(modelId: string, deploymentId: string, seconds: number): void;
}

/** What the promotions this member runs report (controllers/promotions.ts). */
export interface PromotionFigures {
  /** The promotion ended with `status` (SUCCEEDED, FAILED, CANCELED). */
  promotionEnded(modelId: string, environment: string, status: string): void;
  /** The share of the environment's requests its canary takes now; null once no canary runs there. */
  canaryPercent(modelId: string, environment: string, percent: number | null): void;
}

/** Replicas this member runs, by deployment and state (read when scraped). */
export interface ReplicaCount {
  model: string;
  deployment: string;
  state: string;
  count: number;
}

/** Observations counted in the buckets of metrics/latency.ts, in seconds. */
class Histogram {
  readonly counts: LatencyCounts = emptyLatencyCounts();
  sumSeconds = 0;
  count = 0;

  observe(seconds: number): void {
    countLatency(this.counts, seconds * 1000);
    this.sumSeconds += seconds;
    this.count++;
  }

  /** As samples: cumulative buckets (le), +Inf, sum and count. */
  values(name: string, labels: Record<string, string>): Values["values"] {
    const values: Values["values"] = [];
    let cumulative = 0;
    LE.forEach((le, i) => {
      cumulative += this.counts[i] as number;
      values.push({ metricName: `${name}_bucket`, labels: { ...labels, le }, value: cumulative });
    });
    values.push({ metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: this.count });
    values.push({ metricName: `${name}_sum`, labels, value: this.sumSeconds });
    values.push({ metricName: `${name}_count`, labels, value: this.count });
    return values;
  }
}

/** One label set (model, deployment, environment): its answers by status and their latencies. */
interface Series {
  labels: { model: string; deployment: string; environment: string };
  byCode: Map<number, number>;
  latency: Histogram;
}

const REQUESTS = "hangar_gateway_requests_total";
const DURATION = "hangar_gateway_request_duration_seconds";
const REPLICAS = "hangar_replicas";
const COLD_STARTS = "hangar_cold_start_seconds";
const PROMOTIONS = "hangar_promotions_total";
const CANARY = "hangar_canary_traffic_percent";
const LE = LATENCY_BOUNDS_MS.map((ms) => String(ms / 1000));

type Values = MetricObjectWithValues<{ value: number; labels: Record<string, string>; metricName?: string }>;
type Sample = Values["values"][number];

/** A metric whose values are read from `read` when the registry is scraped. */
function scraped(
  name: string,
  help: string,
  type: "counter" | "gauge" | "histogram",
  read: () => Values["values"] | Promise<Values["values"]>,
) {
  return {
    name,
    help,
    type,
    aggregator: "sum",
    // prom-client's own types name the type by an enum; the registry reads the string.
    get: async () => ({ name, help, type, aggregator: "sum", values: await read() }) as unknown as Values,
  } as unknown as Metric;
}

/** A key for a label set (label values are IDs and names: never a newline). */
const keyOf = (...parts: string[]) => parts.join("\n");

export class PrometheusMetrics implements GatewayAnswers, PromotionFigures {
  readonly registry = new Registry();
  private readonly series = new Map<string, Series>();
  private readonly coldStarts = new Map<string, { labels: Record<string, string>; latency: Histogram }>();
  private readonly promotions = new Map<string, { labels: Record<string, string>; value: number }>();
  private readonly canaries = new Map<string, { labels: Record<string, string>; value: number }>();
  private replicas: () => Promise<ReplicaCount[]> = async () => [];

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    const metric = (...args: Parameters<typeof scraped>) => this.registry.registerMetric(scraped(...args));
    metric(REQUESTS, "Gateway answers, by the deployment chosen and the HTTP status", "counter", () =>
      [...this.series.values()].flatMap((s) =>
        [...s.byCode].map(([code, value]) => ({ labels: { ...s.labels, code: String(code) }, value })),
      ),
    );
    metric(
      DURATION,
      "Gateway answer latency, from the request's body read until its answer",
      "histogram",
      () => [...this.series.values()].flatMap((s) => s.latency.values(DURATION, s.labels)),
    );
    metric(REPLICAS, "Replicas this member runs, by state", "gauge", async () =>
      (await this.replicas()).map(
        ({ model, deployment, state, count }): Sample => ({
          labels: { model, deployment, state },
          value: count,
        }),
      ),
    );
    metric(
      COLD_STARTS,
      "Starts from zero caused by a request, from its arrival to its answer",
      "histogram",
      () => [...this.coldStarts.values()].flatMap((s) => s.latency.values(COLD_STARTS, s.labels)),
    );
    metric(PROMOTIONS, "Promotions this member ran to their end, by outcome", "counter", () =>
      [...this.promotions.values()].map(({ labels, value }) => ({ labels, value })),
    );
    metric(CANARY, "The share of an environment's requests its canary takes now", "gauge", () =>
      [...this.canaries.values()].map(({ labels, value }) => ({ labels, value })),
    );
  }

  /** Where hangar_replicas is read from when scraped. */
  countReplicasWith(read: () => Promise<ReplicaCount[]>): void {
    this.replicas = read;
  }

  answered(modelId: string, deploymentId: string, environment: string, status: number, ms: number): void {
    const key = keyOf(modelId, deploymentId, environment);
    let series = this.series.get(key);
    if (!series) {
      series = {
        labels: { model: modelId, deployment: deploymentId, environment },
        byCode: new Map(),
        latency: new Histogram(),
      };
      this.series.set(key, series);
    }
    series.byCode.set(status, (series.byCode.get(status) ?? 0) + 1);
    series.latency.observe(ms / 1000);
  }

  coldStarted(modelId: string, deploymentId: string, seconds: number): void {
    const key = keyOf(modelId, deploymentId);
    let found = this.coldStarts.get(key);
    if (!found) {
      found = { labels: { model: modelId, deployment: deploymentId }, latency: new Histogram() };
      this.coldStarts.set(key, found);
    }
    found.latency.observe(seconds);
  }

  promotionEnded(modelId: string, environment: string, status: string): void {
    const key = keyOf(modelId, environment, status);
    const found = this.promotions.get(key);
    if (found) found.value++;
    else this.promotions.set(key, { labels: { model: modelId, environment, status }, value: 1 });
  }

  canaryPercent(modelId: string, environment: string, percent: number | null): void {
    const key = keyOf(modelId, environment);
    if (percent === null) this.canaries.delete(key);
    else this.canaries.set(key, { labels: { model: modelId, environment }, value: percent });
  }

  /** The text exposition, and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
