/**
 * The Prometheus exposition (API.md section 11): `GET /metrics`, through prom-client. Each member
 * exposes its own counts; the gateway's answers are counted at the member that received the request,
 * and only answers a deployment was chosen for. Labels are IDs (`environment` is a name, empty on
 * deployment and development paths). The histogram's buckets are metrics/latency.ts's, in seconds, so
 * these figures and the shared per-second counts agree.
 */
import { Counter, collectDefaultMetrics, Histogram, Registry } from "prom-client";
import { LATENCY_BOUNDS_MS } from "./latency.ts";

/** The gateway's answers, as it reports them (gateway/gateway.ts). */
export interface GatewayAnswers {
  /** One answer to a request for `deploymentId` of `modelId` through `environment` ("" for none). */
  answered(modelId: string, deploymentId: string, environment: string, status: number, ms: number): void;
}

/** The children of one label set (model, deployment, environment): looked up once, not per request. */
interface Series {
  duration: ReturnType<Histogram<"model" | "deployment" | "environment">["labels"]>;
  byCode: Map<number, ReturnType<Counter<"model" | "deployment" | "environment" | "code">["labels"]>>;
}

/** Label sets kept at most; past it the cache starts again (prom-client keeps the series themselves). */
const MAX_SERIES = 10_000;

export class PrometheusMetrics implements GatewayAnswers {
  readonly registry = new Registry();
  private readonly requests: Counter<"model" | "deployment" | "environment" | "code">;
  private readonly duration: Histogram<"model" | "deployment" | "environment">;
  private readonly series = new Map<string, Series>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.requests = new Counter({
      name: "hangar_gateway_requests_total",
      help: "Gateway answers, by the deployment chosen and the HTTP status",
      labelNames: ["model", "deployment", "environment", "code"],
      registers: [this.registry],
    });
    this.duration = new Histogram({
      name: "hangar_gateway_request_duration_seconds",
      help: "Gateway answer latency, from the request's body read until its answer",
      labelNames: ["model", "deployment", "environment"],
      buckets: LATENCY_BOUNDS_MS.map((ms) => ms / 1000),
      registers: [this.registry],
    });
  }

  answered(modelId: string, deploymentId: string, environment: string, status: number, ms: number): void {
    const key = `${modelId}\n${deploymentId}\n${environment}`;
    let series = this.series.get(key);
    if (!series) {
      if (this.series.size >= MAX_SERIES) this.series.clear();
      series = {
        duration: this.duration.labels(modelId, deploymentId, environment),
        byCode: new Map(),
      };
      this.series.set(key, series);
    }
    let counter = series.byCode.get(status);
    if (!counter) {
      counter = this.requests.labels(modelId, deploymentId, environment, String(status));
      series.byCode.set(status, counter);
    }
    counter.inc();
    series.duration.observe(ms / 1000);
  }

  /** The text exposition, and its content type. */
  async exposition(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
