import { randomBytes } from "node:crypto";

/**
 * IDs are opaque, URL-safe strings that name their type by prefix: the same
 * string is the GraphQL global ID, the database key and the gateway path
 * segment, so no translation layer can drift.
 */
export const ID_PREFIXES = {
  Model: "mdl",
  Deployment: "dep",
  Environment: "env",
  ModelEvent: "evt",
  Replica: "rep",
  Promotion: "prm",
  ApiKey: "key",
  Session: "ses",
  SignInLink: "sil",
  ColdStart: "cst",
  Webhook: "whk",
  WebhookDelivery: "dlv",
} as const;

export type IdKind = keyof typeof ID_PREFIXES;

const ID_BODY = /^[A-Za-z0-9_-]{16}$/;
/** Prefix to kind, built once: the gateway asks for every request. */
const KIND_OF_PREFIX: ReadonlyMap<string, IdKind> = new Map(
  Object.entries(ID_PREFIXES).map(([kind, prefix]) => [prefix, kind as IdKind]),
);

export function newId(kind: IdKind): string {
  return `${ID_PREFIXES[kind]}_${randomBytes(12).toString("base64url")}`;
}

/** The kind an ID names, or null when it is not one of ours (malformed). */
export function idKind(id: string): IdKind | null {
  const sep = id.indexOf("_");
  if (sep < 0 || !ID_BODY.test(id.slice(sep + 1))) return null;
  return KIND_OF_PREFIX.get(id.slice(0, sep)) ?? null;
}

export function isIdOf(kind: IdKind, id: string): boolean {
  return idKind(id) === kind;
}
