import { type Access, seesModel } from "../domain/access.ts";

/**
 * Model scope in queries: a model outside the key's `modelIds` does not exist
 * for it (API.md section 7), so reads filter on it in the database query
 * itself and answer null or leave it out of lists.
 */
export function visibleModels(access: Access): { AND?: { id: { in: string[] } } } {
  // Under AND, so that it can sit beside a unique `id` or `liveName` in findUnique.
  return access.modelIds === null ? {} : { AND: { id: { in: [...access.modelIds] } } };
}

/** The same filter for rows that belong to a model (deployments, environments, promotions). */
export function inVisibleModels(access: Access): { modelId?: { in: string[] } } {
  return access.modelIds === null ? {} : { modelId: { in: [...access.modelIds] } };
}

/** A row read some other way (subscriptions, node): null when the key may not see its model. */
export function ifVisible<T extends { modelId: string }>(access: Access, row: T | null): T | null {
  return row && seesModel(access, row.modelId) ? row : null;
}
