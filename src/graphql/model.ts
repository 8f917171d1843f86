import { GraphQLError } from "graphql";
import { UserError } from "../domain/errors.ts";
import { isIdOf } from "../domain/ids.ts";
import { createModel, deleteModel } from "../services/models.ts";
import { builder, DEFAULT_PAGE, MAX_PAGE } from "./builder.ts";
import { DeploymentRef } from "./deployment.ts";
import { EnvironmentRef } from "./environment.ts";
import { resultUnion, userErrors } from "./errors.ts";
import { eventPage, ModelEventRef } from "./event.ts";
import { visibleModels } from "./scope.ts";

export const ModelRef = builder.prismaNode("Model", {
  id: { field: "id" },
  // Select mode: a query loads these columns, and the others only for the fields that ask for them.
  select: { id: true, name: true },
  fields: (t) => ({
    name: t.string({ resolve: (model) => model.name }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    deletedAt: t.expose("deletedAt", { type: "DateTime", nullable: true }),
    // Loaded with the model (one query for a whole list of them), with what is selected under it.
    productionEnvironment: t.field({
      type: EnvironmentRef,
      select: (_args, _ctx, nestedSelection) => ({
        environments: nestedSelection({ where: { isProduction: true } }),
      }),
      resolve: (model) => {
        const production = model.environments[0];
        if (!production) throw new Error(`model '${model.id}' has no production environment`);
        return production;
      },
    }),
    environments: t.relation("environments", {
      query: { where: { deletedAt: null }, orderBy: [{ isProduction: "desc" }, { createdAt: "asc" }] },
    }),
    environment: t.prismaField({
      type: "Environment",
      nullable: true,
      args: { name: t.arg.string({ required: true }) },
      // findUnique: Prisma answers the calls of a whole list of models with one query.
      resolve: (query, model, args, ctx) =>
        ctx.prisma.environment.findUnique({
          ...query,
          where: { modelId_liveName: { modelId: model.id, liveName: args.name } },
        }),
    }),
    developmentDeployment: t.field({
      type: DeploymentRef,
      nullable: true,
      select: (_args, _ctx, nestedSelection) => ({
        deployments: nestedSelection({ where: { kind: "DEVELOPMENT", deletedAt: null } }),
      }),
      resolve: (model) => model.deployments[0] ?? null,
    }),
    deployments: t.relatedConnection(
      "deployments",
      {
        cursor: "id",
        maxSize: MAX_PAGE,
        defaultSize: DEFAULT_PAGE,
        args: { includeDeleted: t.arg.boolean({ defaultValue: false }) },
        query: (args) => ({
          where: args.includeDeleted ? {} : { deletedAt: null },
          orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        }),
      },
      { name: "DeploymentConnection" },
      { name: "DeploymentEdge" },
    ),
    events: t.connection(
      {
        type: ModelEventRef,
        resolve: (model, args, ctx) => eventPage(ctx.prisma, model.id, args),
      },
      { name: "ModelEventConnection" },
      { name: "ModelEventEdge" },
    ),
    predictUrl: t.string({
      resolve: (model, _args, ctx) => `${ctx.services.config.publicUrl}/models/${model.id}/predict`,
    }),
  }),
});

builder.queryFields((t) => ({
  models: t.prismaConnection(
    {
      type: "Model",
      cursor: "id",
      maxSize: MAX_PAGE,
      defaultSize: DEFAULT_PAGE,
      resolve: (query, _root, _args, ctx) =>
        ctx.prisma.model.findMany({
          ...query,
          where: { deletedAt: null, ...visibleModels(ctx.access) },
          orderBy: [{ createdAt: "asc" }, { id: "asc" }],
        }),
    },
    { name: "ModelConnection" },
    { name: "ModelEdge" },
  ),
  model: t.prismaField({
    type: "Model",
    nullable: true,
    description: "Exactly one of id or name. By ID, deleted models are readable too.",
    args: { id: t.arg.id(), name: t.arg.string() },
    resolve: (query, _root, args, ctx) => {
      if ((args.id == null) === (args.name == null)) throw new GraphQLError("give exactly one of id or name");
      if (args.id != null) {
        return isIdOf("Model", args.id)
          ? ctx.prisma.model.findUnique({ ...query, where: { id: args.id, ...visibleModels(ctx.access) } })
          : null;
      }
      return ctx.prisma.model.findUnique({
        ...query,
        where: { liveName: args.name ?? "", ...visibleModels(ctx.access) },
      });
    },
  }),
}));

const CreateModelInput = builder.inputType("CreateModelInput", {
  fields: (t) => ({ name: t.string({ required: true }) }),
});

const CreateModelResult = resultUnion("CreateModelResult", ModelRef);
const DeleteModelResult = resultUnion("DeleteModelResult", ModelRef);

builder.mutationFields((t) => ({
  createModel: t.field({
    type: CreateModelResult,
    args: { input: t.arg({ type: CreateModelInput, required: true }) },
    resolve: (_root, { input }, ctx) => userErrors(() => createModel(ctx.services, input.name)),
  }),
  deleteModel: t.field({
    type: DeleteModelResult,
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) =>
      userErrors(async () => {
        if (!isIdOf("Model", id)) throw new UserError("NOT_FOUND", `no model with ID '${id}'`, "id");
        return deleteModel(ctx.services, id);
      }),
  }),
}));
