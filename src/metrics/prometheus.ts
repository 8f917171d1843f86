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
import { emptyLatencyCounts, LATENCY_BOUNDS_MS, type LatencyCounts, latencyBucket } from "./latency.ts";

/** The gateway's answers, as it reports them (gateway/gateway.ts). */
export interface GatewayAnswers {
  /** One answer to a request for `deploymentId` of `modelId` through `environment` ("" for none). */
  answered(modelId: string, deploymentId: string, environment: string, status: number, ms: number): void;
}

/** One label set (model, deployment, environment): its answers by status and their latencies. */
interface Series {
  labels: { model: string; deployment: string; environment: string };
  byCode: Map<number, number>;
  latency: LatencyCounts;
  sumSeconds: number;
  count: number;
}

const REQUESTS = "hangar_gateway_requests_total";
const DURATION = "hangar_gateway_request_duration_seconds";
const LE = LATENCY_BOUNDS_MS.map((ms) => String(ms / 1000));

type Values = MetricObjectWithValues<{ value: number; labels: Record<string, string>; metricName?: string }>;

/** A metric whose values are read from `read` when the registry is scraped. */
function scraped(name: string, help: string, type: "counter" | "histogram", read: () => Values["values"]) {
  return {
    name,
    help,
    type,
    aggregator: "sum",
    // prom-client's own types name the type by an enum; the registry reads the string.
    get: async () => ({ name, help, type, aggregator: "sum", values: read() }) as unknown as Values,
  } as unknown as Metric;
}

export class PrometheusMetrics implements GatewayAnswers {
  readonly registry = new Registry();
  private readonly series = new Map<string, Series>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.registry.registerMetric(
      scraped(REQUESTS, "Gateway answers, by the deployment chosen and the HTTP status", "counter", () =>
        [...this.series.values()].flatMap((s) =>
          [...s.byCode].map(([code, value]) => ({ labels: { ...s.labels, code: String(code) }, value })),
        ),
      ),
    );
    this.registry.registerMetric(
      scraped(
        DURATION,
        "Gateway answer latency, from the request's body read until its answer",
        "histogram",
        () => [...this.series.values()].flatMap((s) => histogramValues(s)),
      ),
    );
  }

  answered(modelId: string, deploymentId: string, environment: string, status: number, ms: number): void {
    const key = `${modelId}\n${deploymentId}\n${environment}`;
    let series = this.series.get(key);
    if (!series) {
      series = {
        labels: { model: modelId, deployment: deploymentId, environment },
        byCode: new Map(),
        latency: emptyLatencyCounts(),
        sumSeconds: 0,
        count: 0,
      };
      this.series.set(key, series);
    }
    series.byCode.set(status, (series.byCode.get(status) ?? 0) + 1);
    const bucket = latencyBucket(ms);
    series.latency[bucket] = (series.latency[bucket] as number) + 1;
    series.sumSeconds += ms / 1000;
    series.count++;
  }

  /** The text exposition, and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** A series as histogram samples: cumulative buckets (le), +Inf, sum and count. */
function histogramValues(s: Series): Values["values"] {
  const values: Values["values"] = [];
  let cumulative = 0;
  LE.forEach((le, i) => {
    cumulative += s.latency[i] as number;
    values.push({ metricName: `${DURATION}_bucket`, labels: { ...s.labels, le }, value: cumulative });
  });
  values.push({ metricName: `${DURATION}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: s.count });
  values.push({ metricName: `${DURATION}_sum`, labels: s.labels, value: s.sumSeconds });
  values.push({ metricName: `${DURATION}_count`, labels: s.labels, value: s.count });
  return values;
}
