/**
 * Revocation benchmark (API.md section 7: a revoked key's WebSockets are closed within 5 s): how long
 * after revokeApiKey answers an open graphql-ws connection of that key is closed, and how long until
 * the key is refused over HTTP. The integration tests check that both happen and the design bound
 * (credential cache TTL + socket sweep interval under 5 s); the wall time is this figure, which a
 * loaded machine stretches.
 *
 *   node --import tsx bench/revocation.ts [--rounds 10] [--sockets 5] [--json]
 *
 * One Hangar (child process, embedded database); each round creates a VIEWER key, opens `--sockets`
 * subscriptions with it, revokes it with the admin key, and times each socket's close and the first
 * 401 on POST /graphql (polled every 20 ms). Prints min, p50 and max of each, and exits 1 if any
 * close took 5 s or more.
 */
import { parseArgs } from "node:util";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { gql, startHangar } from "./support/hangar.ts";
import { numberOption } from "./support/options.ts";
import { cleanUpOnSignals, cleanup } from "./support/processes.ts";

const { values } = parseArgs({
  options: {
    rounds: { type: "string" },
    sockets: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const USAGE = "node --import tsx bench/revocation.ts [--rounds 10] [--sockets 5] [--json]";
const rounds = numberOption(values.rounds, "BENCH_ROUNDS", 10, true, USAGE);
const sockets = numberOption(values.sockets, "BENCH_SOCKETS", 5, true, USAGE);

const CREATE_KEY = `mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { __typename ... on CreatedApiKey { secret apiKey { id } } } }`;
const REVOKE = `mutation($id: ID!) { revokeApiKey(id: $id) { __typename } }`;

function summary(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    min: sorted[0] ?? Number.NaN,
    p50: sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN,
    max: sorted.at(-1) ?? Number.NaN,
  };
}

async function main(): Promise<void> {
  const hangar = await startHangar();
  const wsUrl = `${hangar.url.replace("http", "ws")}/graphql`;
  const closes: number[] = [];
  const refusals: number[] = [];
  const model = (
    await gql(hangar, `mutation { createModel(input: { name: "revocation-bench" }) { ... on Model { id } } }`)
  ).createModel;
  for (let round = 0; round < rounds; round++) {
    const created = (await gql(hangar, CREATE_KEY, { input: { name: `bench-${round}`, role: "VIEWER" } }))
      .createApiKey;
    const clients = Array.from({ length: sockets }, () =>
      createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: { authorization: `Bearer ${created.secret}` },
        retryAttempts: 0,
        lazy: true,
      }),
    );
    const closed = clients.map(
      (client) => new Promise<number>((resolve) => client.on("closed", () => resolve(performance.now()))),
    );
    await Promise.all(
      clients.map(
        (client) =>
          new Promise<void>((resolve) => {
            client.on("connected", () => resolve());
            client.subscribe(
              {
                query: "subscription($id: ID!) { modelEvents(modelId: $id) { type } }",
                variables: { id: model.id },
              },
              { next: () => {}, error: () => {}, complete: () => {} },
            );
          }),
      ),
    );
    await gql(hangar, REVOKE, { id: created.apiKey.id });
    const revokedAt = performance.now();
    for (;;) {
      const response = await fetch(`${hangar.url}/graphql`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${created.secret}` },
        body: JSON.stringify({ query: "{ viewer { name } }" }),
      });
      await response.arrayBuffer();
      if (response.status === 401) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    refusals.push(performance.now() - revokedAt);
    for (const at of await Promise.all(closed)) closes.push(at - revokedAt);
    await Promise.all(clients.map((client) => client.dispose()));
  }
  const result = { rounds, sockets, closeMs: summary(closes), refusedMs: summary(refusals) };
  if (values.json) console.log(JSON.stringify(result));
  else {
    const row = (name: string, s: { min: number; p50: number; max: number }) =>
      `${name.padEnd(22)} min ${s.min.toFixed(0).padStart(5)} ms  p50 ${s.p50.toFixed(0).padStart(5)} ms  max ${s.max.toFixed(0).padStart(5)} ms`;
    console.log(`${rounds} rounds, ${sockets} sockets each`);
    console.log(row("WebSocket closed", result.closeMs));
    console.log(row("HTTP refused (401)", result.refusedMs));
  }
  if (result.closeMs.max >= 5_000) process.exitCode = 1;
}

cleanUpOnSignals();
main()
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => cleanup());
