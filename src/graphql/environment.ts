import { parseAutoscaling } from "../domain/autoscaling.ts";
import { notFound } from "../domain/errors.ts";
import { isIdOf } from "../domain/ids.ts";
import {
  CLEANUP_STRATEGIES,
  type PromotionSettings,
  type PromotionSettingsPatch,
  parsePromotionSettings,
} from "../domain/promotion-settings.ts";
import { createEnvironment, deleteEnvironment, updateEnvironment } from "../services/environments.ts";
import { ACTIVE_PROMOTIONS, activePromotionOf, PromotionByName } from "./active-promotion.ts";
import { AutoscalingSettingsInput, AutoscalingSettingsRef } from "./autoscaling.ts";
import { builder, DEFAULT_PAGE, MAX_PAGE } from "./builder.ts";
import { DeploymentRef } from "./deployment.ts";
import { resultUnion, userErrors } from "./errors.ts";
import { visibleModels } from "./scope.ts";

export const CleanupStrategyEnum = builder.enumType("CleanupStrategy", {
  description: "What happens to the previous deployment when a promotion succeeds",
  values: CLEANUP_STRATEGIES,
});

export const PromotionSettingsRef = builder.objectRef<PromotionSettings>("PromotionSettings").implement({
  fields: (t) => ({
    redeployOnPromotion: t.exposeBoolean("redeployOnPromotion", {
      description: "Every promotion creates a new deployment (default false)",
    }),
    rampUpWhilePromoting: t.exposeBoolean("rampUpWhilePromoting", {
      description: "Canary: move traffic in ten stages over rampUpDurationSeconds (default false)",
    }),
    rampUpDurationSeconds: t.exposeInt("rampUpDurationSeconds", { description: "Default 600, 1..86400" }),
    cleanupStrategy: t.field({
      type: CleanupStrategyEnum,
      description: "Default SCALE_TO_ZERO",
      resolve: (s) => s.cleanupStrategy,
    }),
    progressDeadlineSeconds: t.exposeInt("progressDeadlineSeconds", { description: "Default 600, 1..86400" }),
    errorRateThresholdPercent: t.exposeInt("errorRateThresholdPercent", {
      nullable: true,
      description: "Default null (off), 1..100",
    }),
  }),
});

export const PromotionSettingsInput = builder.inputType("PromotionSettingsInput", {
  description: "Only the fields sent change; an explicit null turns errorRateThresholdPercent off",
  fields: (t) => ({
    redeployOnPromotion: t.boolean(),
    rampUpWhilePromoting: t.boolean(),
    rampUpDurationSeconds: t.int(),
    cleanupStrategy: t.field({ type: CleanupStrategyEnum }),
    progressDeadlineSeconds: t.int(),
    errorRateThresholdPercent: t.int(),
  }),
});

/** Only the fields present in the input: "absent" and "explicit null" differ. */
function promotionPatch(input: PromotionSettingsPatch | null | undefined): PromotionSettingsPatch | null {
  if (input == null) return null;
  const patch: PromotionSettingsPatch = {};
  for (const key of [
    "redeployOnPromotion",
    "rampUpWhilePromoting",
    "rampUpDurationSeconds",
    "cleanupStrategy",
    "progressDeadlineSeconds",
    "errorRateThresholdPercent",
  ] as const) {
    if (key in input) Object.assign(patch, { [key]: input[key] ?? null });
  }
  return patch;
}

/** An environment's current deployment, unless it was deleted since (then it serves nothing). */
function liveDeployment<D extends { deletedAt: Date | null }>(deployment: D | null): D | null {
  return deployment && deployment.deletedAt === null ? deployment : null;
}

export const EnvironmentRef = builder.prismaNode("Environment", {
  id: { field: "id" },
  // Select mode: a query loads these columns, and the others only for the fields that ask for them.
  select: { id: true, name: true, isProduction: true },
  fields: (t) => ({
    name: t.string({ resolve: (env) => env.name }),
    isProduction: t.boolean({ resolve: (env) => env.isProduction }),
    model: t.relation("model"),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    deletedAt: t.expose("deletedAt", { type: "DateTime", nullable: true }),
    currentDeployment: t.field({
      type: DeploymentRef,
      nullable: true,
      description: "The deployment serving this environment (null once that deployment is deleted)",
      // Loaded with the environment (one query for a whole list of them), with what is selected under it.
      select: (_args, _ctx, nestedSelection) => ({ currentDeployment: nestedSelection(true) }),
      resolve: (env) => liveDeployment(env.currentDeployment),
    }),
    promotionSettings: t.field({
      type: PromotionSettingsRef,
      select: { promotionSettings: true },
      resolve: (env) => parsePromotionSettings(env.promotionSettings),
    }),
    autoscalingSettings: t.field({
      type: AutoscalingSettingsRef,
      select: { autoscaling: true, currentDeployment: { select: { autoscaling: true, deletedAt: true } } },
      // After ACTIVATE an environment's settings are its current deployment's.
      resolve: (env) =>
        parseAutoscaling(liveDeployment(env.currentDeployment)?.autoscaling ?? env.autoscaling),
    }),
    predictUrl: t.string({
      select: { modelId: true },
      resolve: (env, _args, ctx) =>
        `${ctx.services.config.publicUrl}/models/${env.modelId}/environments/${encodeURIComponent(env.name)}/predict`,
    }),
  }),
});

// Apart from EnvironmentRef's fields: its inferred type cannot depend on PromotionRef's, which depends on it.
builder.prismaObjectFields("Environment", (t) => ({
  candidateDeployment: t.field({
    type: DeploymentRef,
    nullable: true,
    description: "The deployment being promoted in, during a promotion",
    select: (_args, _ctx, nestedSelection) => ({
      promotions: {
        ...ACTIVE_PROMOTIONS,
        select: { activeEnvironmentId: true, deploymentId: true, deployment: nestedSelection(true) },
      },
    }),
    resolve: (env) => activePromotionOf(env)?.deployment ?? null,
  }),
  inProgressPromotion: t.field({
    type: PromotionByName,
    nullable: true,
    select: (_args, _ctx, nestedSelection) => ({ promotions: nestedSelection(ACTIVE_PROMOTIONS) }),
    resolve: (env) => activePromotionOf(env),
  }),
  promotions: t.relatedConnection(
    "promotions",
    {
      cursor: "id",
      maxSize: MAX_PAGE,
      defaultSize: DEFAULT_PAGE,
      description: "Promotion history, newest first",
      query: () => ({ orderBy: [{ createdAt: "desc" }, { id: "desc" }] }),
    },
    { name: "PromotionConnection" },
    { name: "PromotionEdge" },
  ),
}));

builder.queryField("environment", (t) =>
  t.prismaField({
    type: "Environment",
    nullable: true,
    args: { modelId: t.arg.id({ required: true }), name: t.arg.string({ required: true }) },
    resolve: (query, _root, args, ctx) =>
      ctx.prisma.environment.findFirst({
        ...query,
        where: {
          modelId: args.modelId,
          liveName: args.name,
          model: { deletedAt: null, ...visibleModels(ctx.access) },
        },
      }),
  }),
);

const CreateEnvironmentInput = builder.inputType("CreateEnvironmentInput", {
  fields: (t) => ({
    modelId: t.id({ required: true }),
    name: t.string({ required: true }),
    promotionSettings: t.field({ type: PromotionSettingsInput }),
    autoscalingSettings: t.field({ type: AutoscalingSettingsInput }),
  }),
});

const UpdateEnvironmentInput = builder.inputType("UpdateEnvironmentInput", {
  fields: (t) => ({
    environmentId: t.id({ required: true }),
    promotionSettings: t.field({ type: PromotionSettingsInput }),
    autoscalingSettings: t.field({ type: AutoscalingSettingsInput }),
  }),
});

const CreateEnvironmentResult = resultUnion("CreateEnvironmentResult", EnvironmentRef);
const UpdateEnvironmentResult = resultUnion("UpdateEnvironmentResult", EnvironmentRef);
const DeleteEnvironmentResult = resultUnion("DeleteEnvironmentResult", EnvironmentRef);

builder.mutationFields((t) => ({
  createEnvironment: t.field({
    type: CreateEnvironmentResult,
    args: { input: t.arg({ type: CreateEnvironmentInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(async () => {
        if (!isIdOf("Model", input.modelId)) throw notFound("model", input.modelId, "modelId");
        return createEnvironment(ctx.services, {
          modelId: input.modelId,
          name: input.name,
          promotionSettings: promotionPatch(input.promotionSettings),
          autoscalingSettings: input.autoscalingSettings ?? null,
        });
      }),
  }),
  updateEnvironment: t.field({
    type: UpdateEnvironmentResult,
    description: "Changes only the settings sent",
    args: { input: t.arg({ type: UpdateEnvironmentInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(async () => {
        if (!isIdOf("Environment", input.environmentId)) {
          throw notFound("environment", input.environmentId, "environmentId");
        }
        return updateEnvironment(ctx.services, {
          environmentId: input.environmentId,
          promotionSettings: promotionPatch(input.promotionSettings),
          autoscalingSettings: input.autoscalingSettings ?? null,
        });
      }),
  }),
  deleteEnvironment: t.field({
    type: DeleteEnvironmentResult,
    description: "Any environment except production; its record stays readable by ID (deletedAt set)",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) =>
      userErrors(async () => {
        if (!isIdOf("Environment", id)) throw notFound("environment", id);
        return deleteEnvironment(ctx.services, id);
      }),
  }),
}));
