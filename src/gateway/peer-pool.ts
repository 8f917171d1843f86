import { Pool } from "undici";

/** Connecting to another member: it is on the same network, so this is generous. */
const PEER_CONNECT_TIMEOUT_MS = 2_000;

/**
 * The keep-alive pool a member hands requests to another member over (one per member's origin; see
 * peers.ts). On its own so that a benchmark's proxy can use the same one without the rest.
 */
export function peerPool(origin: string): Pool {
  return new Pool(origin, { connectTimeout: PEER_CONNECT_TIMEOUT_MS, keepAliveTimeout: 30_000 });
}
