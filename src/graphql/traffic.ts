/**
 * Traffic figures (API.md section 11): Deployment.metrics and metricsSeries, the same of an Environment
 * (the requests through its paths), summed over every member; and a deployment's cold starts with their
 * phases.
 */
import { GraphQLError } from "graphql";
import {
  FigureRangeError,
  type LatencySummary,
  type TrafficMetrics,
  type TrafficPoint,
  type TrafficScope,
} from "../metrics/traffic-figures.ts";
import type { ServiceContext } from "../services/context.ts";
import { builder, type GraphQLContext } from "./builder.ts";

const LatencySummaryRef = builder.objectRef<LatencySummary>("LatencySummary").implement({
  description:
    "Latency percentiles in milliseconds (from histogram buckets of 1 ms to 60 s); null without data",
  fields: (t) => ({
    p50: t.exposeFloat("p50", { nullable: true }),
    p95: t.exposeFloat("p95", { nullable: true }),
    p99: t.exposeFloat("p99", { nullable: true }),
  }),
});

const TrafficMetricsRef = builder.objectRef<TrafficMetrics>("TrafficMetrics").implement({
  fields: (t) => ({
    windowSeconds: t.exposeInt("windowSeconds"),
    requests: t.exposeInt("requests", { description: "Answers given in the window" }),
    errors: t.exposeInt("errors", { description: "Answers with a 5xx status" }),
    requestsPerSecond: t.exposeFloat("requestsPerSecond"),
    latencyMs: t.field({ type: LatencySummaryRef, resolve: (m) => m.latencyMs }),
    coldStarts: t.exposeInt("coldStarts", { description: "Wake-ups from zero caused by a request" }),
    coldStartMs: t.field({
      type: LatencySummaryRef,
      description: "From the arrival of the request that caused a wake-up to its answer",
      resolve: (m) => m.coldStartMs,
    }),
  }),
});

const TrafficPointRef = builder.objectRef<TrafficPoint>("TrafficPoint").implement({
  fields: (t) => ({
    at: t.field({ type: "DateTime", description: "The start of the step", resolve: (p) => p.at }),
    requests: t.exposeInt("requests"),
    errors: t.exposeInt("errors"),
    latencyMs: t.field({ type: LatencySummaryRef, resolve: (p) => p.latencyMs }),
  }),
});

builder.prismaObject("ColdStart", {
  description: "A wake-up from zero caused by a request, with its phases",
  fields: (t) => ({
    id: t.exposeID("id"),
    requestedAt: t.expose("requestedAt", {
      type: "DateTime",
      description: "The request that caused it arrived",
    }),
    processStartedAt: t.expose("processStartedAt", {
      type: "DateTime",
      nullable: true,
      description: "The replica's process was spawned (null when another member ran the replica)",
    }),
    modelLoadedAt: t.expose("modelLoadedAt", {
      type: "DateTime",
      nullable: true,
      description: "The replica was ready: its model loaded (null when another member ran the replica)",
    }),
    answeredAt: t.expose("answeredAt", { type: "DateTime", description: "That request was answered" }),
    durationMs: t.exposeFloat("durationMs", { description: "requestedAt to answeredAt" }),
    replicaId: t.exposeID("replicaId", { nullable: true }),
    environmentId: t.field({
      type: "ID",
      nullable: true,
      description: "The environment whose path the request came by",
      resolve: (c) => c.environmentId || null,
    }),
  }),
});

function figuresOf(services: ServiceContext) {
  const figures = services.figures;
  if (!figures) throw new GraphQLError("traffic figures are not available on this server");
  return figures;
}

/** A figure's arguments out of range are the client's error, said as such. */
async function asked<T>(read: () => Promise<T>): Promise<T> {
  try {
    return await read();
  } catch (error) {
    if (error instanceof FigureRangeError) {
      throw new GraphQLError(error.message, { extensions: { code: "BAD_USER_INPUT" } });
    }
    throw error;
  }
}

const WINDOW = "windowSeconds: 1 to 3600 (default 300)";
const SERIES =
  "windowSeconds up to 86400 (default 3600), stepSeconds (default 60) a whole number of minutes beyond an hour, at most 1440 points";

function metrics(ctx: GraphQLContext, scope: TrafficScope, windowSeconds: number) {
  return asked(() => figuresOf(ctx.services).metrics(scope, windowSeconds));
}

function series(ctx: GraphQLContext, scope: TrafficScope, windowSeconds: number, stepSeconds: number) {
  return asked(() => figuresOf(ctx.services).series(scope, windowSeconds, stepSeconds));
}

builder.prismaObjectFields("Deployment", (t) => ({
  metrics: t.field({
    type: TrafficMetricsRef,
    // Database reads of every member's counts, after a write of this member's: dearer than a field.
    complexity: 10,
    description: `Its traffic over the last windowSeconds, through every path and every Hangar process (${WINDOW})`,
    args: { windowSeconds: t.arg.int({ defaultValue: 300 }) },
    resolve: (d, args, ctx) => metrics(ctx, { deploymentId: d.id }, args.windowSeconds ?? 300),
  }),
  metricsSeries: t.field({
    type: [TrafficPointRef],
    complexity: 20,
    description: `Its traffic in steps, oldest first, the current step last (${SERIES})`,
    args: {
      windowSeconds: t.arg.int({ defaultValue: 3600 }),
      stepSeconds: t.arg.int({ defaultValue: 60 }),
    },
    resolve: (d, args, ctx) =>
      series(ctx, { deploymentId: d.id }, args.windowSeconds ?? 3600, args.stepSeconds ?? 60),
  }),
  coldStarts: t.prismaField({
    type: ["ColdStart"],
    description: "Its wake-ups from zero caused by a request, newest first (kept 7 days)",
    args: { first: t.arg.int({ defaultValue: 20, required: true }) },
    resolve: (query, d, args, ctx) => {
      if (args.first < 1 || args.first > 100) throw new GraphQLError("first must be from 1 to 100");
      return ctx.prisma.coldStart.findMany({
        ...query,
        where: { deploymentId: d.id },
        orderBy: [{ answeredAt: "desc" }, { id: "desc" }],
        take: args.first,
      });
    },
  }),
}));

builder.prismaObjectFields("Environment", (t) => ({
  metrics: t.field({
    type: TrafficMetricsRef,
    // Database reads of every member's counts, after a write of this member's: dearer than a field.
    complexity: 10,
    description: `The traffic through its paths over the last windowSeconds, every Hangar process together (${WINDOW})`,
    args: { windowSeconds: t.arg.int({ defaultValue: 300 }) },
    resolve: (env, args, ctx) => metrics(ctx, { environmentId: env.id }, args.windowSeconds ?? 300),
  }),
  metricsSeries: t.field({
    type: [TrafficPointRef],
    complexity: 20,
    description: `The traffic through its paths in steps, oldest first, the current step last (${SERIES})`,
    args: {
      windowSeconds: t.arg.int({ defaultValue: 3600 }),
      stepSeconds: t.arg.int({ defaultValue: 60 }),
    },
    resolve: (env, args, ctx) =>
      series(ctx, { environmentId: env.id }, args.windowSeconds ?? 3600, args.stepSeconds ?? 60),
  }),
}));
