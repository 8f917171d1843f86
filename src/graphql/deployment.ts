import { GraphQLError } from "graphql";
import { parseAutoscaling } from "../domain/autoscaling.ts";
import { notFound } from "../domain/errors.ts";
import { isIdOf } from "../domain/ids.ts";
import { deploymentResources } from "../domain/resources.ts";
import { followEvents, readAtCursor } from "../events/reader.ts";
import { watch } from "../events/watch.ts";
import type { Deployment } from "../generated/prisma/client.ts";
import { DeploymentKind, DeploymentStatus, ReplicaState } from "../generated/prisma/enums.ts";
import {
  activateDeployment,
  deactivateDeployment,
  deleteDeployment,
  pushDeployment,
  updateAutoscalingSettings,
} from "../services/deployments.ts";
import { type PatchResult, patchDevelopment } from "../services/patch.ts";
import { ACTIVE_PROMOTIONS, PromotionByName } from "./active-promotion.ts";
import { AutoscalingSettingsInput, AutoscalingSettingsRef } from "./autoscaling.ts";
import { builder, type GraphQLContext, MAX_PAGE } from "./builder.ts";
import { resultUnion, userErrors } from "./errors.ts";
import { pageSize } from "./limits.ts";
import { ResourcesRef } from "./resources.ts";
import { ifVisible, inVisibleModels } from "./scope.ts";
import { SHARING, type SharingRule } from "./sharing.ts";

/** The most lines one `logs` answers. */
const MAX_LOG_LINES = 10_000;

export const DeploymentKindEnum = builder.enumType(DeploymentKind, { name: "DeploymentKind" });

// The values come from the database enum, so the API and the table cannot drift apart.
export const DeploymentStatusEnum = builder.enumType(DeploymentStatus, { name: "DeploymentStatus" });

interface LogLineShape {
  at: Date;
  replica: string | null;
  stream: string;
  line: string;
}

export const LogLineRef = builder.objectRef<LogLineShape>("LogLine").implement({
  fields: (t) => ({
    at: t.expose("at", { type: "DateTime" }),
    replica: t.exposeString("replica", { nullable: true }),
    stream: t.exposeString("stream"),
    line: t.exposeString("line"),
  }),
});

export const ReplicaStateEnum = builder.enumType(ReplicaState, { name: "ReplicaState" });

export const ReplicaRef = builder.prismaObject("Replica", {
  description: "One replica process of a deployment; stopped ones stay as the usage record",
  fields: (t) => ({
    id: t.exposeID("id"),
    pid: t.exposeInt("pid", { nullable: true }),
    state: t.field({ type: ReplicaStateEnum, resolve: (r) => r.state }),
    startedAt: t.expose("startedAt", { type: "DateTime" }),
    readyAt: t.expose("readyAt", { type: "DateTime", nullable: true }),
    stoppedAt: t.expose("stoppedAt", { type: "DateTime", nullable: true }),
    exitReason: t.exposeString("exitReason", { nullable: true }),
    member: t.string({
      description: "The name of the member it runs (or ran) on",
      select: { owner: true },
      // findUnique calls of one tick are batched by Prisma: one query for a page of replicas.
      resolve: async (r, _args, ctx) =>
        (await ctx.prisma.member.findUnique({ where: { id: r.owner }, select: { name: true } }))?.name ??
        r.owner,
    }),
  }),
});

export const DeploymentRef = builder.prismaNode("Deployment", {
  id: { field: "id" },
  // Select mode: a query loads these columns, and the others only for the fields that ask for them.
  // deploymentStatus sends rows with the status of each event: `status` must not be read again.
  // `deletedAt` says whether an environment's current deployment still serves it.
  select: { id: true, name: true, status: true, deletedAt: true },
  fields: (t) => ({
    name: t.string({ resolve: (d) => d.name }),
    kind: t.field({ type: DeploymentKindEnum, select: { kind: true }, resolve: (d) => d.kind }),
    status: t.field({ type: DeploymentStatusEnum, resolve: (d) => d.status }),
    model: t.relation("model"),
    environment: t.prismaField({
      type: "Environment",
      nullable: true,
      description: "The environment it serves now, if any",
      resolve: (query, d, _args, ctx) =>
        ctx.prisma.environment.findFirst({ ...query, where: { currentDeploymentId: d.id, deletedAt: null } }),
    }),
    autoscalingSettings: t.field({
      type: AutoscalingSettingsRef,
      select: { autoscaling: true },
      resolve: (d) => parseAutoscaling(d.autoscaling),
    }),
    resources: t.field({
      type: ResourcesRef,
      description:
        "What its replicas run with: resolved by its build and kept (a promotion's copy has its source's); the server's defaults until then",
      select: { resources: true },
      resolve: (d, _args, ctx) => deploymentResources(d.resources, ctx.services.config.replicaResources),
    }),
    // Counted in the query that loads the deployment (one for a whole list of them).
    activeReplicaCount: t.relationCount("replicas", { where: { state: "READY" } }),
    predictUrl: t.string({
      select: { modelId: true },
      resolve: (d, _args, ctx) =>
        `${ctx.services.config.publicUrl}/models/${d.modelId}/deployments/${d.id}/predict`,
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    deletedAt: t.field({ type: "DateTime", nullable: true, resolve: (d) => d.deletedAt }),
    replicas: t.relation("replicas", {
      description: "Replica processes, oldest first; with includeStopped, the stopped ones too",
      args: { includeStopped: t.arg.boolean({ defaultValue: false }) },
      query: (args) => ({
        where: args.includeStopped ? {} : { state: { in: ["STARTING", "READY", "STOPPING"] } },
        orderBy: { startedAt: "asc" },
        take: 1000,
      }),
    }),
    logs: t.field({
      type: [LogLineRef],
      description: "Build and replica output, oldest first",
      args: { last: t.arg.int({ defaultValue: 100 }) },
      // Costs what it answers (graphql/limits.ts): its lines, as many as the resolver takes.
      complexity: (args) => ({ field: 1, multiplier: pageSize(args.last, 100, MAX_LOG_LINES) }),
      resolve: async (d, args, ctx) => {
        const take = pageSize(args.last, 100, MAX_LOG_LINES);
        const rows = await ctx.prisma.logLine.findMany({
          where: { deploymentId: d.id },
          orderBy: { id: "desc" },
          take,
        });
        return rows.reverse();
      },
    }),
  }),
});

// Apart from DeploymentRef's fields: its inferred type cannot depend on PromotionRef's, which depends on it.
builder.prismaObjectFields("Deployment", (t) => ({
  activePromotion: t.field({
    type: PromotionByName,
    nullable: true,
    description: "The in-progress promotion it is source or new deployment of",
    // Loaded with the deployment (one query per relation for a whole list of them).
    select: (_args, _ctx, nestedSelection) => ({
      promotedBy: nestedSelection(ACTIVE_PROMOTIONS),
      promotedFrom: nestedSelection(ACTIVE_PROMOTIONS),
    }),
    resolve: (d) => d.promotedBy[0] ?? d.promotedFrom[0] ?? null,
  }),
}));

builder.queryField("deployment", (t) =>
  t.prismaField({
    type: "Deployment",
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      isIdOf("Deployment", args.id)
        ? ctx.prisma.deployment.findUnique({
            ...query,
            where: { id: args.id, ...inVisibleModels(ctx.access) },
          })
        : null,
  }),
);

const PushDeploymentInput = builder.inputType("PushDeploymentInput", {
  fields: (t) => ({
    modelName: t.string({ required: true }),
    source: t.field({ type: "File", required: true }),
    development: t.boolean({ defaultValue: false }),
    deploymentName: t.string(),
    environment: t.string({ description: "Publish and promote into this environment at once" }),
  }),
});

const UpdateAutoscalingInput = builder.inputType("UpdateAutoscalingInput", {
  fields: (t) => ({
    deploymentId: t.id({ required: true }),
    settings: t.field({ type: AutoscalingSettingsInput, required: true }),
  }),
});

const PushDeploymentResult = resultUnion("PushDeploymentResult", DeploymentRef);
const ActivateDeploymentResult = resultUnion("ActivateDeploymentResult", DeploymentRef);
const DeactivateDeploymentResult = resultUnion("DeactivateDeploymentResult", DeploymentRef);
const DeleteDeploymentResult = resultUnion("DeleteDeploymentResult", DeploymentRef);
const UpdateAutoscalingResult = resultUnion("UpdateAutoscalingResult", DeploymentRef);

function byId(id: string, field = "id"): string {
  if (!isIdOf("Deployment", id)) throw notFound("deployment", id, field);
  return id;
}

builder.mutationFields((t) => ({
  pushDeployment: t.field({
    type: PushDeploymentResult,
    description:
      "Uploads a model folder (gzip'd tar) as a new deployment, or new code for the development one",
    args: { input: t.arg({ type: PushDeploymentInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(() =>
        pushDeployment(ctx.services, {
          modelName: input.modelName,
          source: input.source.stream(),
          development: input.development ?? false,
          deploymentName: input.deploymentName ?? null,
          environment: input.environment ?? null,
        }),
      ),
  }),
  activateDeployment: t.field({
    type: ActivateDeploymentResult,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => userErrors(() => activateDeployment(ctx.services, byId(id))),
  }),
  deactivateDeployment: t.field({
    type: DeactivateDeploymentResult,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => userErrors(() => deactivateDeployment(ctx.services, byId(id))),
  }),
  deleteDeployment: t.field({
    type: DeleteDeploymentResult,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => userErrors(() => deleteDeployment(ctx.services, byId(id))),
  }),
  updateAutoscalingSettings: t.field({
    type: UpdateAutoscalingResult,
    args: { input: t.arg({ type: UpdateAutoscalingInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(() =>
        updateAutoscalingSettings(ctx.services, byId(input.deploymentId, "deploymentId"), input.settings),
      ),
  }),
}));

async function liveDeployment(ctx: GraphQLContext, id: string) {
  const deployment = isIdOf("Deployment", id)
    ? ifVisible(ctx.access, await ctx.prisma.deployment.findUnique({ where: { id } }))
    : null;
  if (!deployment) throw new GraphQLError(`no deployment with ID '${id}'`);
  return deployment;
}

builder.subscriptionFields((t) => ({
  deploymentStatus: t.field({
    type: DeploymentRef,
    description: "The deployment now, then after every status or replica-count change",
    args: { deploymentId: t.arg.id({ required: true }) },
    // Every message is the whole deployment: identical subscriptions share one execution.
    extensions: { [SHARING]: "latest" satisfies SharingRule },
    subscribe: async (_root, args, ctx) => {
      const { id, modelId } = await liveDeployment(ctx, args.deploymentId);
      const read = async (db: Pick<GraphQLContext["prisma"], "deployment" | "replica">) => ({
        deployment: await db.deployment.findUniqueOrThrow({ where: { id } }),
        replicas: await db.replica.count({ where: { deploymentId: id, state: "READY" } }),
      });
      let lastReplicas = -1;
      // Status changes are read from the event log so that none is skipped, even when several land
      // between two reads; each is sent with the status it set. Replica counts have no event.
      return followEvents<Deployment>(ctx.services.bus, ctx.prisma, {
        modelId,
        filter: { deploymentId: id },
        alsoOn: (change) => change.kind === "deployment" && change.deploymentId === id,
        from: async () => {
          const { value, seq } = await readAtCursor(ctx.prisma, modelId, read);
          lastReplicas = value.replicas;
          return { items: [value.deployment], seq };
        },
        view: async (events) => {
          const { deployment, replicas } = await read(ctx.prisma);
          const items: Deployment[] = [];
          for (const event of events) {
            if (event.deploymentStatus) items.push({ ...deployment, status: event.deploymentStatus });
          }
          if (items.length === 0 && replicas !== lastReplicas) items.push(deployment);
          lastReplicas = replicas;
          return { items };
        },
      });
    },
    resolve: (deployment) => deployment,
  }),
  deploymentLogs: t.field({
    type: LogLineRef,
    description: "New log lines of a deployment as they are written",
    args: { deploymentId: t.arg.id({ required: true }) },
    // Only what is written after subscribing: a joiner takes the shared stream from where it is.
    extensions: { [SHARING]: "live" satisfies SharingRule },
    subscribe: async (_root, args, ctx) => {
      const deployment = await liveDeployment(ctx, args.deploymentId);
      const newest = await ctx.prisma.logLine.findFirst({
        where: { deploymentId: deployment.id },
        orderBy: { id: "desc" },
        select: { id: true },
      });
      let last = newest?.id ?? 0n;
      return watch(
        ctx.services.bus,
        (change) => change.kind === "logs" && change.deploymentId === deployment.id,
        async () => {
          const items = await ctx.prisma.logLine.findMany({
            where: { deploymentId: deployment.id, id: { gt: last } },
            orderBy: { id: "asc" },
            take: MAX_PAGE,
          });
          if (items.length > 0) last = (items.at(-1) as { id: bigint }).id;
          return { items, more: items.length === MAX_PAGE };
        },
      );
    },
    resolve: (line) => line,
  }),
}));

const PatchDevelopmentInput = builder.inputType("PatchDevelopmentInput", {
  fields: (t) => ({
    modelId: t.id({ required: true }),
    source: t.field({ type: "File", required: true }),
  }),
});

const PatchDevelopmentRef = builder.objectRef<PatchResult>("PatchDevelopment").implement({
  fields: (t) => ({
    deployment: t.field({ type: DeploymentRef, resolve: (r) => r.deployment }),
    applied: t.exposeBoolean("applied"),
    needsFullDeploy: t.exposeBoolean("needsFullDeploy"),
    error: t.exposeString("error", {
      nullable: true,
      description: "Why the new code failed to load (the old code keeps serving)",
    }),
  }),
});

const PatchDevelopmentResult = resultUnion("PatchDevelopmentResult", PatchDevelopmentRef);

builder.mutationField("patchDevelopmentDeployment", (t) =>
  t.field({
    type: PatchDevelopmentResult,
    description:
      "Live reload: new code for the development deployment, loaded in place when only code changed",
    args: { input: t.arg({ type: PatchDevelopmentInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(async () => {
        if (!isIdOf("Model", input.modelId)) throw notFound("model", input.modelId, "modelId");
        const reloader = ctx.services.reloader;
        if (!reloader) throw new Error("the deployment controller is not running");
        return patchDevelopment(ctx.services, reloader, input.modelId, input.source.stream());
      }),
  }),
);
