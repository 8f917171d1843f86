/**
 * Minimal reverse proxies (support/proxy.ts) started as processes of their own, for the benchmarks'
 * floor: one in front of a replica's channel, or chained, one in front of another over TCP.
 */
import { type Spawned, spawnNode } from "./processes.ts";

/** Where a proxy sends requests: a replica's channel, or another HTTP server (an origin). */
export type Upstream = { socketPath: string; secret: string } | { origin: string };

export interface Proxy {
  port: number;
  pid: number | null;
  process: Spawned;
}

export async function startProxy(
  name: string,
  upstream: Upstream,
  options: { nodeArgs?: string[]; path?: string } = {},
): Promise<Proxy> {
  const target = "origin" in upstream ? [upstream.origin] : [upstream.socketPath, upstream.secret];
  const child = spawnNode(name, [
    ...(options.nodeArgs ?? []),
    "--import",
    "tsx",
    "bench/support/proxy.ts",
    ...target,
    options.path ?? "/predict",
  ]);
  const port = Number((await child.waitForLine(/^listening (\d+)$/m, 30_000))[1]);
  return { port, pid: child.child.pid ?? null, process: child };
}
