import type { EventEmitter } from "node:events";

/**
 * Resolves on the next `key` event of `emitter`, or after `ms`, whichever
 * comes first: how a runtime waits for the next replica change of a deployment.
 */
export function nextEmit(emitter: EventEmitter, key: string, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      emitter.off(key, done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    emitter.on(key, done);
  });
}
