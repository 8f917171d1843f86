/**
 * The envelop side of shared subscriptions (shared-subscriptions.ts): an execution that reports
 * each source event before executing it, and the execution of one kept source event afresh, for a
 * `latest` joiner. Both run through envelop's subscribe, so its plugins (error masking above all)
 * treat them as every other subscription.
 */

import { createSourceEventStream, type ExecutionArgs, type ExecutionResult, execute } from "graphql";
import type { Plugin } from "graphql-yoga";

/** What a shared execution's rootValue asks of the plugin. */
class SourcePlan {
  constructor(
    /** Told each source event before it is executed. */
    readonly onSource: ((source: unknown) => void) | null,
    /** Executed once as the only result, instead of subscribing. */
    readonly source: { value: unknown } | null,
  ) {}
}

/** rootValue for a shared execution that reports its source events. */
export const reportingSources = (onSource: (source: unknown) => void): unknown =>
  new SourcePlan(onSource, null);

/** rootValue for one execution of `source` (as the subscription field's source), not a stream. */
export const resolvingSource = (source: unknown): unknown => new SourcePlan(null, { value: source });

type Subscribe = (args: ExecutionArgs) => unknown;

const isAsyncIterable = (value: object): value is AsyncIterable<unknown> =>
  typeof (value as Partial<AsyncIterable<unknown>>)[Symbol.asyncIterator] === "function";

/** Each source event mapped to its result, as graphql's subscribe does, reporting the source first. */
function mapSources(
  sources: AsyncIterable<unknown>,
  args: ExecutionArgs,
  onSource: (source: unknown) => void,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = sources[Symbol.asyncIterator]();
  return {
    async next() {
      const step = await iterator.next();
      if (step.done) return { value: undefined, done: true };
      onSource(step.value);
      return { value: await execute({ ...args, rootValue: step.value }), done: false };
    },
    async return() {
      await iterator.return?.();
      return { value: undefined, done: true };
    },
    async throw(error?: unknown) {
      await iterator.return?.();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** Installs the plans above into envelop's subscribe; other subscriptions are left as they are. */
export function useSharedSources(): Plugin {
  return {
    onSubscribe({ args, subscribeFn, setSubscribeFn }) {
      const plan = args.rootValue;
      if (!(plan instanceof SourcePlan)) return;
      const fallback = subscribeFn as Subscribe;
      setSubscribeFn(async (final: ExecutionArgs) => {
        // graphql's execute of a subscription operation runs its root field once, on this source.
        if (plan.source) return execute({ ...final, rootValue: plan.source.value });
        const sources = await createSourceEventStream(final);
        // An answer with errors (not found, refused, bad variables) is left to the usual subscribe,
        // so that it reads exactly as an unshared subscription's.
        if (!isAsyncIterable(sources)) return fallback(final);
        return mapSources(sources, final, plan.onSource ?? (() => {}));
      });
    },
  };
}
