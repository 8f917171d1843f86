/** What `hangar keys` reads and prints: the ApiKey object of API.md section 7, its listing and lookups. */
import type { HangarApi } from "./api.ts";
import { CliError } from "./errors.ts";
import { formatTime } from "./output.ts";
import { allPages, type Connection } from "./resources.ts";

export const API_KEY_ROLES = ["ADMIN", "DEPLOYER", "VIEWER", "INFERENCE"] as const;
export type ApiKeyRole = (typeof API_KEY_ROLES)[number];

/** Every field of ApiKey; --json prints the object as the API answers it. */
export const API_KEY_FIELDS =
  "id name role modelIds environments prefix createdAt expiresAt lastUsedAt revokedAt";

export interface ApiKey {
  id: string;
  name: string;
  role: ApiKeyRole;
  modelIds: string[] | null;
  environments: string[] | null;
  prefix: string;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

/** A key as --json prints it: the ApiKey fields alone (a mutation's answer also holds __typename). */
export function apiKeyJson(key: ApiKey): ApiKey {
  return {
    id: key.id,
    name: key.name,
    role: key.role,
    modelIds: key.modelIds,
    environments: key.environments,
    prefix: key.prefix,
    createdAt: key.createdAt,
    expiresAt: key.expiresAt,
    lastUsedAt: key.lastUsedAt,
    revokedAt: key.revokedAt,
  };
}

const API_KEYS = `
  query ApiKeys($first: Int, $after: String) {
    apiKeys(first: $first, after: $after) {
      edges { node { ${API_KEY_FIELDS} } }
      pageInfo { hasNextPage endCursor }
    }
  }`;

/** Every key the server lists (revoked ones too), following the pages. */
export function listApiKeys(api: HangarApi): Promise<ApiKey[]> {
  return allPages(
    async (first, after) =>
      (await api.query<{ apiKeys: Connection<ApiKey> }>(API_KEYS, { first, after })).apiKeys,
  );
}

/**
 * The key `ref` names: the key with that ID, else the live key of that name (names are unique among
 * live keys only, so a revoked key of the same name does not stand in the way).
 */
export function findApiKey(keys: ApiKey[], ref: string): ApiKey {
  const found = keys.find((k) => k.id === ref) ?? keys.find((k) => k.name === ref && !k.revokedAt);
  if (found) return found;
  const revoked = keys.find((k) => k.name === ref);
  if (revoked) {
    throw new CliError(`the API key '${ref}' (${revoked.id}) was already revoked at ${revoked.revokedAt}`);
  }
  throw new CliError(`no API key named or with ID '${ref}' (\`hangar keys list\` lists them)`);
}

/** Aliases per request, below the server's alias limit (HANGAR_GRAPHQL_MAX_ALIASES, 50). */
const NAMES_PER_REQUEST = 40;

/**
 * Model names by ID, for the table: keys hold model IDs. A model deleted since still reads by ID; one
 * that does not (or not for this key) is left out, and the table shows its ID.
 */
export async function modelNames(api: HangarApi, ids: Iterable<string>): Promise<Map<string, string>> {
  const unique = [...new Set(ids)];
  const names = new Map<string, string>();
  for (let start = 0; start < unique.length; start += NAMES_PER_REQUEST) {
    const chunk = unique.slice(start, start + NAMES_PER_REQUEST);
    const variables = Object.fromEntries(chunk.map((id, i) => [`id${i}`, id]));
    const document = `query ModelNames(${chunk.map((_, i) => `$id${i}: ID!`).join(", ")}) {
      ${chunk.map((_, i) => `m${i}: model(id: $id${i}) { name }`).join("\n      ")}
    }`;
    const data = await api.query<Record<string, { name: string } | null>>(document, variables);
    chunk.forEach((id, i) => {
      const model = data[`m${i}`];
      if (model) names.set(id, model.name);
    });
  }
  return names;
}

/** What a key may act on, for people: model names (IDs where unknown) and environments, or "all". */
export function scopeText(key: ApiKey, names: Map<string, string>): { models: string; environments: string } {
  return {
    models: key.modelIds ? key.modelIds.map((id) => names.get(id) ?? id).join(",") : "all",
    environments: key.environments ? key.environments.join(",") : "all",
  };
}

/** A key's expiry for the table: blank when it never expires, marked once past. */
export function expiryText(key: ApiKey, now = Date.now()): string {
  if (!key.expiresAt) return "";
  const past = new Date(key.expiresAt).getTime() <= now;
  return `${formatTime(key.expiresAt)}${past ? " (expired)" : ""}`;
}
