import { encodeEventCursor } from "../events/log.ts";
import type { Webhook } from "../generated/prisma/client.ts";
import { WebhookDeliveryStatus } from "../generated/prisma/enums.ts";
import { createWebhook, deleteWebhook, visibleWebhooks } from "../services/webhooks.ts";
import { eventTypesOf } from "../store/webhooks.ts";
import { builder, DEFAULT_PAGE, MAX_PAGE } from "./builder.ts";
import { resultUnion, userErrors } from "./errors.ts";
import { ModelEventTypeEnum } from "./event.ts";

const WebhookDeliveryStatusEnum = builder.enumType(WebhookDeliveryStatus, { name: "WebhookDeliveryStatus" });

builder.prismaObject("WebhookDelivery", {
  description: "One event sent (or to be sent) to one webhook",
  fields: (t) => ({
    id: t.exposeID("id", { description: "Sent as x-hangar-delivery, the same on every retry" }),
    eventCursor: t.string({
      description: "The event's cursor (as in Model.events and modelEvents)",
      resolve: (delivery) => encodeEventCursor(delivery.eventSeq),
    }),
    eventType: t.field({ type: ModelEventTypeEnum, resolve: (delivery) => delivery.eventType }),
    attempts: t.exposeInt("attempts"),
    status: t.field({ type: WebhookDeliveryStatusEnum, resolve: (delivery) => delivery.status }),
    lastStatus: t.exposeInt("lastStatus", {
      nullable: true,
      description: "The HTTP status of the last answer; null when there was none",
    }),
    lastError: t.exposeString("lastError", { nullable: true, description: "Why the last attempt failed" }),
    deliveredAt: t.expose("deliveredAt", { type: "DateTime", nullable: true }),
  }),
});

/** A webhook as the API shows it: never its secret, which only createWebhook's answer holds. */
export const WebhookRef = builder.prismaNode("Webhook", {
  id: { field: "id" },
  fields: (t) => ({
    url: t.exposeString("url"),
    modelId: t.exposeID("modelId", { nullable: true, description: "null: every model" }),
    events: t.field({
      type: [ModelEventTypeEnum],
      nullable: true,
      description: "null: every type",
      resolve: (webhook) => eventTypesOf(webhook),
    }),
    createdAt: t.expose("createdAt", { type: "DateTime" }),
    deliveries: t.relatedConnection(
      "deliveries",
      {
        cursor: "id",
        maxSize: MAX_PAGE,
        defaultSize: DEFAULT_PAGE,
        description: "Its deliveries, newest first (the latest event's first)",
        query: () => ({ orderBy: [{ seq: "desc" }] }),
      },
      { name: "WebhookDeliveryConnection" },
      { name: "WebhookDeliveryEdge" },
    ),
  }),
});

interface CreatedWebhookShape {
  webhook: Webhook;
  secret: string;
}

const CreatedWebhookRef = builder.objectRef<CreatedWebhookShape>("CreatedWebhook").implement({
  description: "The only answer that ever holds a webhook's signing secret: keep it, it is not shown again",
  fields: (t) => ({
    webhook: t.field({ type: WebhookRef, resolve: (created) => created.webhook }),
    secret: t.exposeString("secret"),
  }),
});

const CreateWebhookInput = builder.inputType("CreateWebhookInput", {
  fields: (t) => ({
    url: t.string({ required: true, description: "http:// or https://; redirects are not followed" }),
    modelId: t.id({ description: "null: every model (a key limited to models must give one of them)" }),
    events: t.field({ type: [ModelEventTypeEnum], description: "null: every type" }),
  }),
});

builder.queryFields((t) => ({
  webhooks: t.prismaField({
    type: ["Webhook"],
    // A webhook's URL often holds a token: ADMIN and DEPLOYER keys only (domain/access.ts mayManageWebhook).
    authScopes: { write: true },
    description: "The live webhooks the key may manage, oldest first (ADMIN; DEPLOYER for its models)",
    resolve: (query, _root, _args, ctx) =>
      ctx.prisma.webhook.findMany({
        ...query,
        where: { deletedAt: null, ...visibleWebhooks(ctx.services) },
        orderBy: [{ createdAt: "asc" }, { id: "asc" }],
      }),
  }),
}));

const CreateWebhookResult = resultUnion("CreateWebhookResult", CreatedWebhookRef);
const DeleteWebhookResult = resultUnion("DeleteWebhookResult", WebhookRef);

builder.mutationFields((t) => ({
  createWebhook: t.field({
    type: CreateWebhookResult,
    args: { input: t.arg({ type: CreateWebhookInput, required: true }) },
    resolve: (_root, { input }, ctx) =>
      userErrors(() =>
        createWebhook(ctx.services, {
          url: input.url,
          modelId: input.modelId ?? null,
          events: input.events ?? null,
        }),
      ),
  }),
  deleteWebhook: t.field({
    type: DeleteWebhookResult,
    description: "Deletes a webhook: nothing more is sent to it, pending deliveries included",
    args: { id: t.arg.id({ required: true }) },
    resolve: (_root, { id }, ctx) => userErrors(() => deleteWebhook(ctx.services, id)),
  }),
}));
