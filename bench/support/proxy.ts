/**
 * The minimal reverse proxy of the benchmarks: the least a Node reverse proxy does.
 *
 *   node --import tsx bench/support/proxy.ts <replicaSocket> <replicaSecret> [path]
 *   node --import tsx bench/support/proxy.ts http://<host>:<port> [path]
 *
 * Listens on a free loopback port (printed as `listening <port>` on stdout) and sends every request's
 * body bytes, whatever its path, to `path` upstream, then the answer's bytes back: to a replica over
 * its channel with the pool Hangar's gateway uses for its replicas (replicaPool), or to another HTTP
 * server with the pool a member hands requests to another member over (peerPool): chained, two of
 * them are the floor of a request one member hands to another. No routing, no auth, no JSON parsing:
 * the floor for one Node hop, against which the gateway is measured.
 */
import http from "node:http";
import type { Pool } from "undici";
import { peerPool } from "../../src/gateway/peer-pool.ts";
import { replicaPool } from "../../src/runtime/replica-channel.ts";

const args = process.argv.slice(2);
const toOrigin = args[0]?.startsWith("http://") ?? false;
const [replicaSocket, replicaSecret] = args;
const replicaPath = (toOrigin ? args[1] : args[2]) ?? "/predict";
if (!args[0] || (!toOrigin && !replicaSecret)) {
  process.stderr.write(
    "usage: proxy.ts <replicaSocket> <replicaSecret> [path] | proxy.ts http://host:port [path]\n",
  );
  process.exit(2);
}

const pool: Pool = toOrigin
  ? peerPool(args[0] as string)
  : replicaPool(replicaSocket as string, replicaSecret as string);

function concat(chunks: Buffer[]): Buffer {
  return chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
}

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const body = concat(chunks);
    pool
      .request({
        method: "POST",
        path: replicaPath,
        headers: {
          "content-type": req.headers["content-type"] ?? "application/json",
          "content-length": String(body.length),
        },
        body,
      })
      .then(async (response) => {
        const parts: Buffer[] = [];
        for await (const chunk of response.body) parts.push(chunk as Buffer);
        const payload = concat(parts);
        res.writeHead(response.statusCode, {
          "content-type": String(response.headers["content-type"] ?? "application/json"),
          "content-length": payload.length,
        });
        res.end(payload);
      })
      .catch((error: unknown) => {
        const payload = JSON.stringify({ error: String(error), error_code: "bad_gateway" });
        if (res.headersSent) return void res.destroy();
        res.writeHead(502, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(payload),
        });
        res.end(payload);
      });
  });
});
// As Hangar's server: longer than the load generator ever leaves a connection idle.
server.keepAliveTimeout = 65_000;
server.listen(0, "127.0.0.1", () => {
  const address = server.address();
  const port = address && typeof address === "object" ? address.port : 0;
  process.stdout.write(`listening ${port}\n`);
});

const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.close().finally(() => process.exit(0));
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
