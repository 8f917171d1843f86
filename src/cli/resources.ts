/**
 * What the listing and control commands read: name-or-ID lookups, pagination, the deployment selection
 * and the object their --json prints. (Promotions use follow.ts's PROMOTION_FIELDS and deploy.ts's
 * promotionJson, so that every command prints a promotion the same way.)
 */
import type { HangarApi } from "./api.ts";
import { deploymentJson } from "./deploy.ts";
import { CliError } from "./errors.ts";

/** Page size for listings (the server clamps anything above its maximum). */
const PAGE = 100;

export interface Connection<T> {
  edges: Array<{ node: T }>;
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/** Every node of a cursor connection, following pageInfo until the last page. */
export async function allPages<T>(
  fetchPage: (first: number, after: string | null) => Promise<Connection<T>>,
) {
  const nodes: T[] = [];
  let after: string | null = null;
  for (;;) {
    const page: Connection<T> = await fetchPage(PAGE, after);
    nodes.push(...page.edges.map((edge) => edge.node));
    if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return nodes;
    after = page.pageInfo.endCursor;
  }
}

export const DEPLOYMENT_SELECTION = `
  id name kind status activeReplicaCount predictUrl createdAt deletedAt
  model { id name }
  environment { id name }`;

export interface DeploymentNode {
  id: string;
  name: string;
  kind: string;
  status: string;
  activeReplicaCount: number;
  predictUrl: string;
  createdAt: string;
  deletedAt: string | null;
  model: { id: string; name: string };
  environment: { id: string; name: string } | null;
}

/** A deployment as --json prints it: what `hangar push --json` prints, plus where it serves. */
export function deploymentObject(d: DeploymentNode) {
  return {
    ...deploymentJson(d),
    environment: d.environment?.name ?? null,
    environmentId: d.environment?.id ?? null,
    deletedAt: d.deletedAt,
  };
}

export interface ModelRef {
  id: string;
  name: string;
}

const MODEL_BY = `
  query ModelBy($ref: String!, $id: ID!) {
    byName: model(name: $ref) { id name deletedAt }
    byId: model(id: $id) { id name deletedAt }
  }`;

/** A model named or identified by `ref` (a live model of that name first, else that ID). */
export async function resolveModel(api: HangarApi, ref: string): Promise<ModelRef> {
  type Found = { id: string; name: string; deletedAt: string | null } | null;
  const { byName, byId } = await api.query<{ byName: Found; byId: Found }>(MODEL_BY, { ref, id: ref });
  if (byName) return { id: byName.id, name: byName.name };
  if (byId && !byId.deletedAt) return { id: byId.id, name: byId.name };
  if (byId) throw new CliError(`model ${byId.name} (${byId.id}) was deleted at ${byId.deletedAt}`);
  throw new CliError(`no model named or with ID '${ref}' (\`hangar models\` lists them)`);
}

/** The ID of a model's environment, by model (name or ID) and environment name. */
export async function resolveEnvironment(
  api: HangarApi,
  modelRef: string,
  name: string,
): Promise<{ id: string; name: string; model: ModelRef }> {
  const model = await resolveModel(api, modelRef);
  const data = await api.query<{ model: { environment: { id: string; name: string } | null } | null }>(
    `query EnvironmentBy($id: ID!, $name: String!) { model(id: $id) { environment(name: $name) { id name } } }`,
    { id: model.id, name },
  );
  const environment = data.model?.environment;
  if (!environment) {
    throw new CliError(
      `model ${model.name} has no environment named '${name}' (\`hangar environments ${model.name}\` lists them)`,
    );
  }
  return { ...environment, model };
}
