import { gql } from "./client.ts";
import type { TestHangar } from "./hangar.ts";

export interface KeyInput {
  name: string;
  role: "ADMIN" | "DEPLOYER" | "VIEWER" | "INFERENCE";
  modelIds?: string[];
  environments?: string[];
  expiresAt?: string;
}

export const CREATE_KEY = `mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    __typename
    ... on CreatedApiKey { secret apiKey { id name role modelIds environments prefix expiresAt } }
    ... on UserError { code message field }
  }
}`;

/** Creates a key with the server's admin key; returns its ID and secret. */
export async function createKey(
  hangar: TestHangar,
  input: KeyInput,
): Promise<{ id: string; secret: string }> {
  const result = (await gql(hangar, CREATE_KEY, { input })).createApiKey;
  if (result.__typename !== "CreatedApiKey") throw new Error(`createApiKey: ${JSON.stringify(result)}`);
  return { id: result.apiKey.id, secret: result.secret };
}

/** The same server, called with another key. */
export function asKey(hangar: TestHangar, secret: string): TestHangar {
  return { ...hangar, key: secret };
}
