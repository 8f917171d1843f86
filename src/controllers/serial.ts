/**
 * Runs tasks one after another per key: a deployment's decisions and the
 * facts reported about it are handled in order, never interleaved.
 */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<void>>();

  run(key: string, task: () => Promise<void>, onError: (error: unknown) => void): Promise<void> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const next = previous.then(task).catch(onError);
    this.tails.set(key, next);
    void next.then(() => {
      if (this.tails.get(key) === next) this.tails.delete(key);
    });
    return next;
  }

  async idle(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
