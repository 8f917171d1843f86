import { hostname } from "node:os";
import { gql } from "./client.ts";
import type { TestHangar } from "./hangar.ts";

/** A member's default name (API.md section 10): this host and the port it listens on. */
export const defaultMemberName = (hangar: TestHangar) => `${hostname()}:${new URL(hangar.url).port}`;

/** The names of the members running the deployment's ready replicas. */
export async function runningOn(hangar: TestHangar, id: string): Promise<string[]> {
  const { deployment } = await gql(
    hangar,
    `query($id: ID!) { deployment(id: $id) { replicas { state member } } }`,
    { id },
  );
  return deployment.replicas
    .filter((r: { state: string }) => r.state === "READY")
    .map((r: { member: string }) => r.member);
}
