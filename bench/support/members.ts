/**
 * Several Hangar members on one PostgreSQL (API.md section 10), for the benchmarks: a database of
 * their own on a throwaway cluster (test/support/postgres.ts), and where a deployment's replicas run.
 */
import pg from "pg";
import { type BenchHangar, gql } from "./hangar.ts";

/** Creates database `name` on the cluster of `adminUrl`; answers its URL (for DATABASE_URL). */
export async function createDatabase(adminUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

export interface Placement {
  state: string;
  /** The name of the member it runs on. */
  member: string;
}

/** The deployment's replicas: their state and the member each runs on. */
export async function replicasOf(hangar: BenchHangar, deploymentId: string): Promise<Placement[]> {
  const data = await gql(hangar, "query($id: ID!) { deployment(id: $id) { replicas { state member } } }", {
    id: deploymentId,
  });
  return data.deployment?.replicas ?? [];
}

export interface Member {
  name: string;
  url: string;
  alive: boolean;
  replicaCount: number;
}

/** The members query: every member, as any member sees them. */
export async function membersOf(hangar: BenchHangar): Promise<Member[]> {
  return (await gql(hangar, "{ members { name url alive replicaCount } }")).members;
}
