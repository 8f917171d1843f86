/**
 * The multicast behind shared subscriptions (src/http/shared-subscriptions.ts), with fake
 * executions: joiners get the current state first then every later result in order, a slow
 * subscriber delays nobody else and is ended when hopelessly behind, the execution stops when its
 * last subscriber leaves; and which operations share a key.
 */
import { type ExecutionResult, parse } from "graphql";
import { describe, expect, it } from "vitest";
import type { Change, ChangeBus } from "../../src/events/bus.ts";
import { watch } from "../../src/events/watch.ts";
import { schema } from "../../src/graphql/schema.ts";
import { SharedSubscriptions, type ShareKey, shareKeyOf } from "../../src/http/shared-subscriptions.ts";

/** A controllable execution: results are pushed by the test; records whether it was stopped. */
class FakeExecution implements AsyncIterableIterator<ExecutionResult> {
  private queue: IteratorResult<ExecutionResult>[] = [];
  private waiting: ((result: IteratorResult<ExecutionResult>) => void) | null = null;
  private failure: ((error: unknown) => void) | null = null;
  returned = false;

  emit(value: number): void {
    this.deliver({ value: { data: { n: value } }, done: false });
  }
  end(): void {
    this.deliver({ value: undefined, done: true });
  }
  fail(error: Error): void {
    this.failure?.(error);
  }
  private deliver(result: IteratorResult<ExecutionResult>): void {
    if (this.waiting) {
      const waiting = this.waiting;
      this.waiting = null;
      waiting(result);
    } else this.queue.push(result);
  }
  next(): Promise<IteratorResult<ExecutionResult>> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      this.waiting = resolve;
      this.failure = reject;
    });
  }
  return(): Promise<IteratorResult<ExecutionResult>> {
    this.returned = true;
    this.waiting?.({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }
  [Symbol.asyncIterator](): this {
    return this;
  }
}

const latest: ShareKey = { key: "k", mode: "latest", field: "promotionProgress" };
const live: ShareKey = { key: "k", mode: "live", field: "modelEvents" };

/** Lets the multicast's pump move (it runs on promises). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

type Stream = AsyncIterableIterator<ExecutionResult>;

async function take(stream: Stream, count: number): Promise<number[]> {
  const values: number[] = [];
  for (let i = 0; i < count; i++) {
    const step = await stream.next();
    if (step.done) break;
    values.push((step.value.data as { n: number }).n);
  }
  return values;
}

describe("shared subscriptions", () => {
  it("starts one execution for identical subscriptions; a late joiner gets the latest result first", async () => {
    const hub = new SharedSubscriptions();
    const execution = new FakeExecution();
    let starts = 0;
    const start = () => {
      starts++;
      return execution;
    };
    const first = (await hub.subscribe(latest, start)) as Stream;
    execution.emit(1);
    execution.emit(2);
    await settle();
    const late = (await hub.subscribe(latest, start)) as Stream;
    execution.emit(3);
    execution.emit(4);
    execution.end();
    expect(await take(first, 10)).toEqual([1, 2, 3, 4]);
    expect(await take(late, 10)).toEqual([2, 3, 4]);
    expect(starts).toBe(1);
    expect(hub.stats()).toEqual({ upstreams: 0, subscribers: 0 });
  });

  it("gives a latest joiner the last source executed afresh, before what comes after it", async () => {
    const hub = new SharedSubscriptions();
    const execution = new FakeExecution();
    let report: (source: unknown) => void = () => {};
    const start = (onSource: (source: unknown) => void) => {
      report = onSource;
      return execution;
    };
    const emit = (n: number) => {
      report(n);
      execution.emit(n);
    };
    // What the source resolves to now: 10 times the source, unlike the result it gave then.
    let release: () => void = () => {};
    const resolved: unknown[] = [];
    const resolve = async (source: unknown) => {
      resolved.push(source);
      await new Promise<void>((r) => (release = r));
      return { data: { n: (source as number) * 10 } };
    };
    const first = (await hub.subscribe(latest, start, resolve)) as Stream;
    emit(1);
    emit(2);
    expect(await take(first, 2)).toEqual([1, 2]);
    const late = (await hub.subscribe(latest, start, resolve)) as Stream;
    // A result that comes while the joiner's first is being resolved waits behind it.
    const lateFirst = take(late, 2);
    emit(3);
    await settle();
    release();
    execution.end();
    expect(await lateFirst).toEqual([20, 3]);
    expect(await take(first, 10)).toEqual([3]);
    expect(resolved).toEqual([2]);
  });

  it("replays nothing to a live joiner: only what comes after it joined", async () => {
    const hub = new SharedSubscriptions();
    const execution = new FakeExecution();
    const first = (await hub.subscribe(live, () => execution)) as Stream;
    execution.emit(1);
    await settle();
    const late = (await hub.subscribe(live, () => execution)) as Stream;
    execution.emit(2);
    execution.end();
    expect(await take(first, 10)).toEqual([1, 2]);
    expect(await take(late, 10)).toEqual([2]);
  });

  /** Two subscribers of one execution: five results, each taken at once by `fast`, none by `slow`. */
  async function fastAndSlow(hub: SharedSubscriptions) {
    const execution = new FakeExecution();
    const fast = (await hub.subscribe(latest, () => execution)) as Stream;
    const slow = (await hub.subscribe(latest, () => execution)) as Stream;
    for (let n = 1; n <= 5; n++) {
      execution.emit(n);
      expect(await take(fast, 1)).toEqual([n]);
    }
    return { execution, fast, slow };
  }

  it("keeps every result for a slow subscriber without holding up the others", async () => {
    const { execution, fast, slow } = await fastAndSlow(new SharedSubscriptions());
    execution.end();
    expect(await take(fast, 10)).toEqual([]);
    expect(await take(slow, 10)).toEqual([1, 2, 3, 4, 5]);
  });

  it("ends a hopelessly slow subscriber with an error and keeps serving the rest", async () => {
    const hub = new SharedSubscriptions({ maxQueued: 3 });
    const { execution, fast, slow: stuck } = await fastAndSlow(hub);
    await expect(stuck.next()).rejects.toThrow(/fell more than 3 messages behind/);
    expect(await stuck.next()).toEqual({ value: undefined, done: true });
    expect(hub.stats()).toEqual({ upstreams: 1, subscribers: 1 });
    execution.emit(6);
    expect(await take(fast, 1)).toEqual([6]);
    expect(execution.returned).toBe(false);
  });

  it("stops the execution when its last subscriber leaves, not before; a new subscriber starts afresh", async () => {
    const stopped: string[] = [];
    const hub = new SharedSubscriptions({
      onUpstream: (event, _share, reason) => {
        if (event === "stopped") stopped.push(reason ?? "");
      },
    });
    const execution = new FakeExecution();
    const a = (await hub.subscribe(latest, () => execution)) as Stream;
    const b = (await hub.subscribe(latest, () => execution)) as Stream;
    execution.emit(1);
    await a.return?.();
    expect(execution.returned).toBe(false);
    execution.emit(2);
    expect(await take(b, 2)).toEqual([1, 2]);
    const waiting = b.next();
    await b.return?.();
    expect(await waiting).toEqual({ value: undefined, done: true });
    expect(execution.returned).toBe(true);
    expect(stopped).toEqual(["its last subscriber left"]);
    const again = new FakeExecution();
    const c = (await hub.subscribe(latest, () => again)) as Stream;
    again.emit(7);
    expect(await take(c, 1)).toEqual([7]);
  });

  it("gives every subscriber the execution's single result when it answers with one (an error)", async () => {
    const hub = new SharedSubscriptions();
    const answer: ExecutionResult = { errors: [] };
    let resolveStart: (value: ExecutionResult) => void = () => {};
    const start = () => new Promise<ExecutionResult>((resolve) => (resolveStart = resolve));
    const both = Promise.all([hub.subscribe(latest, start), hub.subscribe(latest, start)]);
    await settle();
    resolveStart(answer);
    expect(await both).toEqual([answer, answer]);
    expect(hub.stats()).toEqual({ upstreams: 0, subscribers: 0 });
  });

  it("passes a failure of the execution to every subscriber after what they were sent", async () => {
    const hub = new SharedSubscriptions();
    const execution = new FakeExecution();
    const a = (await hub.subscribe(latest, () => execution)) as Stream;
    const b = (await hub.subscribe(latest, () => execution)) as Stream;
    execution.emit(1);
    await settle();
    execution.fail(new Error("database gone"));
    await settle();
    for (const stream of [a, b]) {
      expect(await take(stream, 1)).toEqual([1]);
      await expect(stream.next()).rejects.toThrow("database gone");
    }
  });

  it("shares a watch on the change bus: one read per change, and no listener left once all leave", async () => {
    const hub = new SharedSubscriptions();
    const listeners = new Set<(change: Change) => void>();
    const bus = {
      on: (listener: (change: Change) => void) => {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
    } as unknown as ChangeBus;
    let reads = 0;
    let state = 0;
    const start = () =>
      watch<ExecutionResult>(
        bus,
        () => true,
        async () => {
          reads++;
          return { items: [{ data: { n: state } }] };
        },
      );
    const change = async (n: number) => {
      state = n;
      for (const listener of listeners) listener({ kind: "logs", deploymentId: "d" });
      await settle();
    };
    const subscribers = await Promise.all(
      Array.from({ length: 20 }, () => hub.subscribe(latest, start) as Promise<Stream>),
    );
    await settle();
    await change(1);
    await change(2);
    expect(listeners.size).toBe(1);
    expect(reads).toBe(3);
    for (const stream of subscribers) expect(await take(stream, 3)).toEqual([0, 1, 2]);
    const late = (await hub.subscribe(latest, start)) as Stream;
    expect(await take(late, 1)).toEqual([2]);
    for (const stream of [...subscribers, late]) await stream.return?.();
    await settle();
    expect(listeners.size).toBe(0);
    await change(3);
    expect(reads).toBe(3);
  });
});

describe("share keys", () => {
  const keyOf = (query: string, variables: Record<string, unknown> = {}, principal = "admin") =>
    shareKeyOf({ schema, document: parse(query), variableValues: variables }, principal);
  const progress = "subscription($id: ID!) { promotionProgress(promotionId: $id) { status } }";

  it("is the same for the same subscription, whatever the spacing and the variables' key order", () => {
    const a = keyOf(progress, { id: "prm_1" });
    const b = keyOf("subscription ($id: ID!) {\n  promotionProgress(promotionId: $id) {\n status }\n}", {
      id: "prm_1",
    });
    expect(a).toMatchObject({ mode: "latest", field: "promotionProgress" });
    expect(a?.key).toBe(b?.key);
    const c = keyOf("subscription($a: ID!, $b: String) { modelEvents(modelId: $a, after: $b) { cursor } }", {
      a: "mdl_1",
      b: null,
    });
    const d = keyOf("subscription($a: ID!, $b: String) { modelEvents(modelId: $a, after: $b) { cursor } }", {
      b: null,
      a: "mdl_1",
    });
    expect(c?.key).toBe(d?.key);
  });

  it("differs by variables, selection and identity", () => {
    const base = keyOf(progress, { id: "prm_1" })?.key;
    expect(keyOf(progress, { id: "prm_2" })?.key).not.toBe(base);
    expect(keyOf(progress, { id: "prm_1" }, "someone-else")?.key).not.toBe(base);
    expect(
      keyOf("subscription($id: ID!) { promotionProgress(promotionId: $id) { status canaryStage } }", {
        id: "prm_1",
      })?.key,
    ).not.toBe(base);
  });

  it("is null for what must run on its own: queries, replays from a cursor, unshared fields", () => {
    expect(keyOf("{ models { edges { cursor } } }")).toBeNull();
    expect(keyOf('subscription { modelEvents(modelId: "mdl_1", after: "ZXZ0OjE") { cursor } }')).toBeNull();
    expect(keyOf('subscription { modelEvents(modelId: "mdl_1") { cursor } }')).toMatchObject({
      mode: "live",
    });
    expect(keyOf('subscription { deploymentLogs(deploymentId: "dep_1") { line } }')).toMatchObject({
      mode: "live",
    });
    expect(keyOf('subscription { deploymentStatus(deploymentId: "dep_1") { status } }')).toMatchObject({
      mode: "latest",
    });
  });
  it("is null, not a stack overflow, for variables nested deeper than a key needs (a hostile client's)", () => {
    let junk: unknown = 1;
    for (let i = 0; i < 100_000; i++) junk = { a: junk };
    expect(keyOf(progress, { id: "prm_1", junk })).toBeNull();
    expect(keyOf(progress, { id: "prm_1", junk: [[[{ a: [1] }]]] })).toMatchObject({ mode: "latest" });
  });
});
