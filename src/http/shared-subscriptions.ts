/**
 * Shared subscriptions (a transport): identical subscriptions (same identity, same normalized
 * document, operation name and variables) share one execution. The first subscriber starts it;
 * later ones join it; each gets the results from the point it joined, through its own small queue,
 * so a slow client delays nobody else. The execution stops when its last subscriber leaves.
 *
 * Sharing is opt-in per subscription field (graphql/sharing.ts), because it is only correct when
 * the results do not depend on who asks (beyond the identity in the key) nor on when they joined,
 * except as the field's mode says:
 *
 * - `latest`: every message is the whole current state. What is shared is the source event stream
 *   (each source event executed once for all subscribers); the last SOURCE value is kept, and a
 *   joiner's first message is that source executed afresh for it, so that nested objects (a
 *   promotion's deployment, its environment) are as they are when it joins, not as they were at the
 *   last change. Then every later result.
 * - `live`: a stream of new things with no first message. A joiner gets what comes after it joined.
 *
 * A subscriber that falls `maxQueued` results behind (its socket is not draining) is ended with an
 * error, so that one stuck client cannot pin an unbounded backlog; it can subscribe again and gets
 * the current state first.
 */
import {
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  GraphQLError,
  getArgumentValues,
  getOperationAST,
  print,
} from "graphql";

import { SHARING, type SharingMode, type SharingRule } from "../graphql/sharing.ts";

export interface ShareKey {
  key: string;
  mode: SharingMode;
  /** The subscription field, for logs. */
  field: string;
}

type Started = AsyncIterable<ExecutionResult> | ExecutionResult;

/**
 * Starts the shared execution. It calls `onSource` with each source event just before executing
 * it, so that the upstream knows which source each result came from.
 */
export type Start = (onSource: (source: unknown) => void) => Promise<Started> | Started;
/** Executes one source event afresh, for a `latest` joiner's first message. */
export type Resolve = (source: unknown) => Promise<ExecutionResult> | ExecutionResult;

export interface SharedSubscriptionsOptions {
  /** Results a subscriber may fall behind before it is ended with an error. */
  maxQueued?: number;
  /** Told when an execution starts and stops (for the debug log). */
  onUpstream?: (event: "started" | "stopped", share: ShareKey, reason?: string) => void;
}

export const DEFAULT_MAX_QUEUED = 256;

const printed = new WeakMap<DocumentNode, string>();

/**
 * Variables are the client's raw JSON (not yet coerced): nested deeper than this, a subscription
 * runs on its own rather than have this recursive walk overflow the stack.
 */
const MAX_SHARED_VARIABLES_DEPTH = 64;

class TooDeep extends Error {}

/** JSON with object keys sorted, so that variables sent in another key order share too. */
function stableJson(value: unknown, depth = 0): string {
  if (depth > MAX_SHARED_VARIABLES_DEPTH) throw new TooDeep();
  if (Array.isArray(value)) return `[${value.map((item) => stableJson(item, depth + 1)).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v, depth + 1)}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

/**
 * The key under which this operation may share an execution, or null when it must run on its own:
 * not a subscription, a root field without a sharing rule, or one whose rule says no for these
 * arguments. `principal` is the identity the results are computed for.
 */
export function shareKeyOf(args: ExecutionArgs, principal: string): ShareKey | null {
  const operation = getOperationAST(args.document, args.operationName);
  if (operation?.operation !== "subscription") return null;
  // Validation allows exactly one root field; through a fragment it is simply not shared.
  const [selection] = operation.selectionSet.selections;
  if (operation.selectionSet.selections.length !== 1 || selection?.kind !== "Field") return null;
  if (selection.directives?.length) return null;
  const field = args.schema.getSubscriptionType()?.getFields()[selection.name.value];
  const rule = field?.extensions?.[SHARING] as SharingRule | undefined;
  if (!field || !rule) return null;
  let mode: SharingMode | null;
  if (typeof rule === "function") {
    try {
      mode = rule(getArgumentValues(field, selection, args.variableValues ?? {}));
    } catch {
      return null; // Invalid arguments: the execution itself reports them.
    }
  } else mode = rule;
  if (!mode) return null;
  let document = printed.get(args.document);
  if (document === undefined) {
    document = print(args.document);
    printed.set(args.document, document);
  }
  let variables: string;
  try {
    variables = stableJson(args.variableValues ?? {});
  } catch (error) {
    if (error instanceof TooDeep) return null;
    throw error;
  }
  const key = [principal, mode, args.operationName ?? "", variables, document];
  return { key: JSON.stringify(key), mode, field: field.name };
}

const isIterable = (value: Started): value is AsyncIterable<ExecutionResult> =>
  typeof (value as AsyncIterable<ExecutionResult>)[Symbol.asyncIterator] === "function";

/** One execution and the subscribers it feeds. */
class Upstream {
  readonly subscribers = new Set<Subscriber>();
  /** The last result, for `latest` joiners when there is no source to resolve afresh. */
  latest: ExecutionResult | null = null;
  /** The source event of the last result, and the one being executed now. */
  latestSource: { value: unknown } | null = null;
  executing: { value: unknown } | null = null;
  iterator: AsyncIterator<ExecutionResult> | null = null;
  /** The execution ended (or was stopped): no one may join it any more. */
  ended = false;
  /** Settles once the execution has started: with its stream, or with its only result (an error). */
  readonly started: Promise<Started>;

  constructor(
    readonly share: ShareKey,
    start: Start,
  ) {
    this.started = Promise.resolve().then(() =>
      start((value) => {
        this.executing = { value };
      }),
    );
  }
}

/** One client's view of an Upstream: what it has not taken yet, and how it ends. */
class Subscriber implements AsyncIterableIterator<ExecutionResult> {
  private queue: ExecutionResult[] = [];
  private waiting: {
    resolve: (result: IteratorResult<ExecutionResult>) => void;
    reject: (error: unknown) => void;
  } | null = null;
  /** Set when nothing more will be added: done, or the error to raise after the queue. */
  private end: { error: unknown } | null = null;
  /** The first message, resolved afresh: it goes before anything queued meanwhile. */
  private head: Promise<ExecutionResult> | null = null;

  constructor(
    private readonly hub: SharedSubscriptions,
    public upstream: Upstream | null,
  ) {}

  /** Sends `first` before everything pushed from now on. */
  lead(first: Promise<ExecutionResult>): void {
    this.head = first;
    // Unhandled until taken: a failure is raised by next(), not as an unhandled rejection.
    first.catch(() => {});
  }

  push(result: ExecutionResult): void {
    if (this.end) return;
    if (this.waiting && !this.head) {
      const { resolve } = this.waiting;
      this.waiting = null;
      resolve({ value: result, done: false });
      return;
    }
    this.queue.push(result);
    if (this.queue.length > this.hub.maxQueued) {
      // Hopelessly slow: drop the backlog and end with an error rather than hold it without bound.
      this.queue = [];
      this.hub.leave(this, "a subscriber fell behind");
      this.finish(
        new GraphQLError(
          `This subscription fell more than ${this.hub.maxQueued} messages behind and was ended; subscribe again to get the current state.`,
          { extensions: { code: "SUBSCRIBER_TOO_SLOW" } },
        ),
      );
    }
  }

  /** Nothing more will come: complete (or fail with `error`) once the queue is taken. */
  finish(error: unknown = null): void {
    if (this.end) return;
    this.end = { error };
    this.upstream = null;
    if (this.waiting && this.queue.length === 0) this.settle();
  }

  private settle(): void {
    const waiting = this.waiting;
    this.waiting = null;
    const error = this.end?.error;
    if (this.end) this.end = { error: null };
    if (error) waiting?.reject(error);
    else waiting?.resolve({ value: undefined, done: true });
  }

  next(): Promise<IteratorResult<ExecutionResult>> {
    const head = this.head;
    if (head) {
      this.head = null;
      return head.then(
        (value) => ({ value, done: false }),
        (error: unknown) => {
          void this.return();
          throw error;
        },
      );
    }
    const value = this.queue.shift();
    if (value !== undefined) return Promise.resolve({ value, done: false });
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
      if (this.end) this.settle();
    });
  }

  return(): Promise<IteratorResult<ExecutionResult>> {
    this.hub.leave(this, "its last subscriber left");
    this.queue = [];
    this.head = null;
    this.end = { error: null };
    this.upstream = null;
    this.settle();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error?: unknown): Promise<IteratorResult<ExecutionResult>> {
    void this.return();
    return Promise.reject(error);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

export class SharedSubscriptions {
  readonly maxQueued: number;
  private readonly upstreams = new Map<string, Upstream>();
  private readonly onUpstream: SharedSubscriptionsOptions["onUpstream"];

  constructor(options: SharedSubscriptionsOptions = {}) {
    this.maxQueued = options.maxQueued ?? DEFAULT_MAX_QUEUED;
    this.onUpstream = options.onUpstream;
  }

  /** Running executions and the subscribers they feed. */
  stats(): { upstreams: number; subscribers: number } {
    let subscribers = 0;
    for (const upstream of this.upstreams.values()) subscribers += upstream.subscribers.size;
    return { upstreams: this.upstreams.size, subscribers };
  }

  /**
   * Joins the execution running under `share.key`, or starts one with `start` (the real
   * subscribe). A `latest` joiner's first message is the last source event executed afresh by
   * `resolve` (without it, or before any source was seen: the last result as it was). Answers what
   * graphql-ws expects from its `subscribe` hook: a stream, or the single result (errors) the
   * execution answered with.
   */
  async subscribe(
    share: ShareKey,
    start: Start,
    resolve?: Resolve,
  ): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
    let upstream = this.upstreams.get(share.key);
    if (!upstream || upstream.ended) {
      upstream = new Upstream(share, start);
      this.upstreams.set(share.key, upstream);
      this.run(upstream);
    }
    const subscriber = new Subscriber(this, upstream);
    upstream.subscribers.add(subscriber);
    if (share.mode === "latest") {
      const source = upstream.latestSource;
      if (source && resolve) subscriber.lead(Promise.resolve().then(() => resolve(source.value)));
      else if (upstream.latest) subscriber.push(upstream.latest);
    }
    let started: Started;
    try {
      started = await upstream.started;
    } catch (error) {
      upstream.subscribers.delete(subscriber);
      throw error;
    }
    if (isIterable(started)) return subscriber;
    upstream.subscribers.delete(subscriber);
    return started;
  }

  /** Takes the subscriber off its upstream; the upstream stops when that was its last. */
  leave(subscriber: Subscriber, reason: string): void {
    const upstream = subscriber.upstream;
    if (!upstream) return;
    subscriber.upstream = null;
    upstream.subscribers.delete(subscriber);
    if (upstream.subscribers.size === 0 && !upstream.ended) this.stop(upstream, reason);
  }

  private stop(upstream: Upstream, reason: string, error: unknown = null): void {
    if (upstream.ended) return;
    upstream.ended = true;
    if (this.upstreams.get(upstream.share.key) === upstream) this.upstreams.delete(upstream.share.key);
    // Ending the execution's stream ends its database watch (streams.ts) at once.
    void upstream.iterator?.return?.()?.catch(() => {});
    for (const subscriber of upstream.subscribers) subscriber.finish(error);
    upstream.subscribers.clear();
    this.onUpstream?.("stopped", upstream.share, reason);
  }

  private async run(upstream: Upstream): Promise<void> {
    let started: Started;
    try {
      started = await upstream.started;
    } catch (error) {
      this.stop(upstream, "it failed to start", error);
      return;
    }
    if (!isIterable(started)) {
      // The execution answered with one result (an error): each waiting subscriber returns it.
      this.stop(upstream, "it answered with a single result");
      return;
    }
    const iterator = started[Symbol.asyncIterator]();
    upstream.iterator = iterator;
    if (upstream.ended) {
      // Everyone left while it was starting.
      void iterator.return?.()?.catch(() => {});
      return;
    }
    this.onUpstream?.("started", upstream.share);
    try {
      for (;;) {
        const step = await iterator.next();
        if (upstream.ended) return;
        if (step.done) break;
        upstream.latest = step.value;
        // The source this result was executed from (none when the execution does not report them).
        upstream.latestSource = upstream.executing;
        for (const subscriber of upstream.subscribers) subscriber.push(step.value);
      }
      this.stop(upstream, "it completed");
    } catch (error) {
      this.stop(upstream, "it failed", error);
    }
  }
}
