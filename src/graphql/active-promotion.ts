import type { PromotionRef } from "./promotion.ts";

/**
 * An environment's active promotion is the one whose activeEnvironmentId is the environment's ID
 * (unique); it is one of the environment's promotions, so it is loaded with the environment
 * through that relation, filtered, in one query for a whole list of environments (and the same
 * filter finds a deployment's, through the promotions it is source or new deployment of).
 */
export const ACTIVE_PROMOTIONS = { where: { activeEnvironmentId: { not: null } } };

export function activePromotionOf<P extends { activeEnvironmentId: string | null }>(env: {
  id: string;
  promotions: P[];
}): P | null {
  return env.promotions.find((p) => p.activeEnvironmentId === env.id) ?? null;
}

/**
 * The Promotion type by name, for Deployment and Environment fields: importing promotion.ts's ref
 * would be an import cycle (it reads both types), and ESM would then register its root fields
 * before theirs, reordering Query, Mutation and Subscription as introspection shows them.
 */
export const PromotionByName = "Promotion" as unknown as typeof PromotionRef;
