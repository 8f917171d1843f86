import { GraphQLError } from "graphql";
import { notFound } from "../domain/errors.ts";
import { isIdOf } from "../domain/ids.ts";
import { isActive, type PromotionStatus, parseSteps } from "../domain/promotion.ts";
import { followEvents, readAtCursor } from "../events/reader.ts";
import type { Promotion } from "../generated/prisma/client.ts";
import { PromotionStatus as PromotionStatusValues } from "../generated/prisma/enums.ts";
import {
  cancelCanary,
  cancelPromotion,
  forceRollForward,
  pausePromotion,
  promote,
  resumePromotion,
} from "../services/promotions.ts";
import { builder, type GraphQLContext } from "./builder.ts";
import { DeploymentRef } from "./deployment.ts";
import { EnvironmentRef } from "./environment.ts";
import { resultUnion, userErrors } from "./errors.ts";
import { ifVisible, inVisibleModels } from "./scope.ts";
import { SHARING, type SharingRule } from "./sharing.ts";

export const PromotionStatusEnum = builder.enumType(PromotionStatusValues, { name: "PromotionStatus" });
const PromotionStepNameEnum = builder.enumType("PromotionStepName", {
  values: ["CREATE_DEPLOYMENT", "START_DEPLOYMENT", "ACTIVATE"] as const,
});
const StepStatusEnum = builder.enumType("StepStatus", {
  values: ["PENDING", "RUNNING", "SUCCEEDED", "FAILED", "SKIPPED"] as const,
});

const PromotionStepRef = builder.objectRef<ReturnType<typeof parseSteps>[number]>("PromotionStep").implement({
  fields: (t) => ({
    name: t.field({ type: PromotionStepNameEnum, resolve: (s) => s.name }),
    status: t.field({ type: StepStatusEnum, resolve: (s) => s.status }),
    startedAt: t.field({
      type: "DateTime",
      nullable: true,
      resolve: (s) => (s.startedAt ? new Date(s.startedAt) : null),
    }),
    finishedAt: t.field({
      type: "DateTime",
      nullable: true,
      resolve: (s) => (s.finishedAt ? new Date(s.finishedAt) : null),
    }),
    message: t.string({ nullable: true, resolve: (s) => s.message }),
  }),
});

/**
 * A deployment by ID, for Promotion fields. findUnique, not findUniqueOrThrow: Prisma answers the
 * findUnique calls made in one tick with one query, but only when they are all of one kind.
 */
async function deploymentById(ctx: GraphQLContext, id: string) {
  const deployment = await ctx.prisma.deployment.findUnique({ where: { id } });
  if (!deployment) throw new GraphQLError(`no deployment with ID '${id}'`);
  return deployment;
}

/**
 * Promotion fields read foreign keys, not relations: promotionProgress sends
 * snapshots of the row as each event left it, and those must resolve as they were.
 */
export const PromotionRef = builder.prismaNode("Promotion", {
  id: { field: "id" },
  // Every column a field reads, and no field selects its own: a snapshot must resolve from what
  // it holds, never be read again. Left out: settings and the controller's bookkeeping.
  select: {
    id: true,
    environmentId: true,
    activeEnvironmentId: true,
    sourceDeploymentId: true,
    deploymentId: true,
    previousDeploymentId: true,
    status: true,
    steps: true,
    percentTraffic: true,
    canaryStage: true,
    canaryStages: true,
    errorMessage: true,
    createdAt: true,
    finishedAt: true,
  },
  fields: (t) => ({
    environment: t.field({
      type: EnvironmentRef,
      resolve: (p, _args, ctx) =>
        ctx.prisma.environment.findUniqueOrThrow({ where: { id: p.environmentId } }),
    }),
    sourceDeployment: t.field({
      type: DeploymentRef,
      description: "What the user asked to promote",
      resolve: (p, _args, ctx) => deploymentById(ctx, p.sourceDeploymentId),
    }),
    deployment: t.field({
      type: DeploymentRef,
      nullable: true,
      description: "What will serve: a new deployment or the same one; null until created",
      resolve: (p, _args, ctx) =>
        p.deploymentId ? ctx.prisma.deployment.findUnique({ where: { id: p.deploymentId } }) : null,
    }),
    previousDeployment: t.field({
      type: DeploymentRef,
      nullable: true,
      resolve: (p, _args, ctx) =>
        p.previousDeploymentId
          ? ctx.prisma.deployment.findUnique({ where: { id: p.previousDeploymentId } })
          : null,
    }),
    status: t.field({ type: PromotionStatusEnum, resolve: (p) => p.status }),
    steps: t.field({ type: [PromotionStepRef], resolve: (p) => parseSteps(p.steps) }),
    percentTrafficToNewVersion: t.int({ resolve: (p) => p.percentTraffic }),
    canaryStage: t.int({ nullable: true, resolve: (p) => p.canaryStage }),
    canaryStages: t.int({ nullable: true, resolve: (p) => p.canaryStages }),
    errorMessage: t.string({ nullable: true, resolve: (p) => p.errorMessage }),
    createdAt: t.field({ type: "DateTime", resolve: (p) => new Date(p.createdAt) }),
    finishedAt: t.field({
      type: "DateTime",
      nullable: true,
      resolve: (p) => (p.finishedAt ? new Date(p.finishedAt) : null),
    }),
  }),
});

builder.queryField("promotion", (t) =>
  t.prismaField({
    type: "Promotion",
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      isIdOf("Promotion", args.id)
        ? ctx.prisma.promotion.findUnique({
            ...query,
            where: { id: args.id, ...inVisibleModels(ctx.access) },
          })
        : null,
  }),
);

const PromoteInput = builder.inputType("PromoteInput", {
  fields: (t) => ({
    deploymentId: t.id({ required: true }),
    environment: t.string({ defaultValue: "production" }),
    scaleDownPreviousDeployment: t.boolean({ defaultValue: true }),
  }),
});

const environmentId = (id: string) => {
  if (!isIdOf("Environment", id)) throw notFound("environment", id, "environmentId");
  return id;
};

builder.mutationFields((t) => ({
  promote: t.field({
    type: resultUnion("PromoteResult", PromotionRef),
    args: { input: t.arg({ type: PromoteInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(() => {
        if (!isIdOf("Deployment", input.deploymentId))
          throw notFound("deployment", input.deploymentId, "deploymentId");
        return promote(ctx.services, {
          deploymentId: input.deploymentId,
          environment: input.environment ?? "production",
          scaleDownPreviousDeployment: input.scaleDownPreviousDeployment ?? true,
        });
      }),
  }),
  cancelPromotion: t.field({
    type: resultUnion("CancelPromotionResult", PromotionRef),
    args: { environmentId: t.arg.id({ required: true }), graceful: t.arg.boolean({ defaultValue: false }) },
    resolve: (_root, args, ctx) =>
      userErrors(() =>
        cancelPromotion(ctx.services, environmentId(args.environmentId), args.graceful ?? false),
      ),
  }),
  cancelCanary: t.field({
    type: resultUnion("CancelCanaryResult", PromotionRef),
    args: { environmentId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) =>
      userErrors(() => cancelCanary(ctx.services, environmentId(args.environmentId))),
  }),
  pausePromotion: t.field({
    type: resultUnion("PausePromotionResult", PromotionRef),
    args: { environmentId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) =>
      userErrors(() => pausePromotion(ctx.services, environmentId(args.environmentId))),
  }),
  resumePromotion: t.field({
    type: resultUnion("ResumePromotionResult", PromotionRef),
    args: { environmentId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) =>
      userErrors(() => resumePromotion(ctx.services, environmentId(args.environmentId))),
  }),
  forceRollForward: t.field({
    type: resultUnion("ForceRollForwardResult", PromotionRef),
    args: { environmentId: t.arg.id({ required: true }) },
    resolve: (_root, args, ctx) =>
      userErrors(() => forceRollForward(ctx.services, environmentId(args.environmentId))),
  }),
}));

builder.subscriptionField("promotionProgress", (t) =>
  t.field({
    type: PromotionRef,
    description:
      "The promotion as it is now, then again after every change of status, step or canary stage (every stage, in order, none skipped); completes after a terminal status",
    args: { promotionId: t.arg.id({ required: true }) },
    // Every message is the whole promotion: identical subscriptions share one execution.
    extensions: { [SHARING]: "latest" satisfies SharingRule },
    subscribe: async (_root, args, ctx) => {
      const current = isIdOf("Promotion", args.promotionId)
        ? ifVisible(ctx.access, await ctx.prisma.promotion.findUnique({ where: { id: args.promotionId } }))
        : null;
      if (!current) throw new GraphQLError(`no promotion with ID '${args.promotionId}'`);
      const ended = (promotion: Promotion) => !isActive(promotion.status as PromotionStatus);
      let done = false;
      return followEvents<Promotion>(ctx.services.bus, ctx.prisma, {
        modelId: current.modelId,
        filter: { promotionId: current.id },
        // The promotion now; later changes come from the events' snapshots, in order, so a slow
        // client misses none.
        from: async () => {
          const { value: now, seq } = await readAtCursor(ctx.prisma, current.modelId, (tx) =>
            tx.promotion.findUniqueOrThrow({ where: { id: current.id } }),
          );
          done = ended(now);
          return { items: [now], seq, done };
        },
        view: (events) => {
          const items: Promotion[] = [];
          for (const event of events) {
            if (!event.snapshot || done) continue;
            const snapshot = event.snapshot as unknown as Promotion;
            items.push(snapshot);
            done = ended(snapshot);
          }
          return { items, done };
        },
      });
    },
    resolve: (promotion) => promotion,
  }),
);
