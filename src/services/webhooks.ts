import { mayManageWebhook } from "../domain/access.ts";
import { notFound, UserError } from "../domain/errors.ts";
import { isIdOf } from "../domain/ids.ts";
import { MAX_WEBHOOKS, newWebhookSecret, webhookUrlProblem } from "../domain/webhooks.ts";
import type { Webhook } from "../generated/prisma/client.ts";
import type { ModelEventType } from "../generated/prisma/enums.ts";
import { countLiveWebhooks, insertWebhook, lockLiveWebhook, markWebhookDeleted } from "../store/webhooks.ts";
import { refuse } from "./authorize.ts";
import { type RequestContext, transaction } from "./context.ts";

export interface CreateWebhookInput {
  url: string;
  modelId: string | null;
  events: readonly ModelEventType[] | null;
}

/** The webhooks a key may list: all, or those of the models it is limited to. */
export function visibleWebhooks(ctx: RequestContext): { modelId?: { in: string[] } } {
  const { modelIds } = ctx.access;
  return modelIds === null ? {} : { modelId: { in: [...modelIds] } };
}

function checkEvents(events: readonly ModelEventType[] | null): ModelEventType[] | null {
  if (events === null) return null;
  if (events.length === 0) {
    throw new UserError(
      "INVALID_INPUT",
      "events may not be an empty list (leave it out for every type)",
      "events",
    );
  }
  const seen = new Set<ModelEventType>();
  for (const type of events) {
    if (seen.has(type)) throw new UserError("INVALID_INPUT", `events lists ${type} twice`, "events");
    seen.add(type);
  }
  return [...seen];
}

/**
 * createWebhook: the webhook gets the matching events committed from now on. The secret is returned
 * here and never again.
 */
export async function createWebhook(
  ctx: RequestContext,
  input: CreateWebhookInput,
): Promise<{ webhook: Webhook; secret: string }> {
  const problem = webhookUrlProblem(input.url);
  if (problem) throw new UserError("INVALID_INPUT", problem, "url");
  const events = checkEvents(input.events);
  const modelId = input.modelId;
  if (modelId === null && !mayManageWebhook(ctx.access, null)) {
    throw refuse(ctx, "create a webhook for every model (give modelId)");
  }
  const secret = newWebhookSecret();
  const webhook = await transaction(ctx, async (tx) => {
    if (modelId !== null) {
      const missing = () => notFound("live model", modelId, "modelId");
      if (!isIdOf("Model", modelId)) throw missing();
      const model = await tx.model.findFirst({
        where: { id: modelId, deletedAt: null },
        select: { id: true },
      });
      if (!model || !mayManageWebhook(ctx.access, model.id)) throw missing();
    }
    if ((await countLiveWebhooks(tx)) >= MAX_WEBHOOKS) {
      throw new UserError(
        "INVALID_INPUT",
        `this Hangar has ${MAX_WEBHOOKS} webhooks, the most it keeps: delete one first`,
        "url",
      );
    }
    return insertWebhook(tx, { url: input.url, modelId, events, secret });
  });
  ctx.log.info({ webhookId: webhook.id, modelId, actor: ctx.access.name }, "webhook created");
  return { webhook, secret };
}

/** deleteWebhook: nothing more is queued for it, and what it had pending is not sent. */
export async function deleteWebhook(ctx: RequestContext, id: string): Promise<Webhook> {
  const webhook = await transaction(ctx, async (tx) => {
    const missing = () => notFound("webhook", id);
    if (!isIdOf("Webhook", id)) throw missing();
    const row = await lockLiveWebhook(tx, id);
    // One the key may not manage does not exist for it, as a model outside its scope.
    if (!row || !mayManageWebhook(ctx.access, row.modelId)) throw missing();
    return markWebhookDeleted(tx, id, new Date(ctx.clock.now()));
  });
  ctx.log.info({ webhookId: webhook.id, actor: ctx.access.name }, "webhook deleted");
  return webhook;
}
