// Streams of generation events: a single-consumer queue that ends with a result or an error (the
// scheduler feeds one per sequence; WorkerEngine one per request), and draining a stream to its result.

/** Items pushed by a producer, read as an async generator that returns the final result (or throws). */
export class AsyncQueue<T, R> {
  private readonly items: T[] = [];
  private outcome: { result: R } | { error: unknown } | undefined;
  private wake: (() => void) | undefined;

  /** Whether end() or fail() has been called. */
  get ended(): boolean {
    return this.outcome !== undefined;
  }

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  end(result: R): void {
    this.outcome = { result };
    this.wake?.();
  }

  fail(error: unknown): void {
    this.outcome = { error };
    this.wake?.();
  }

  async *stream(): AsyncGenerator<T, R> {
    for (;;) {
      while (this.items.length > 0) yield this.items.shift()!;
      if (this.outcome) {
        if ('error' in this.outcome) throw this.outcome.error;
        return this.outcome.result;
      }
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}

/** Runs a stream to its end and returns its result (the items are dropped). */
export async function streamResult<R>(stream: AsyncGenerator<unknown, R>): Promise<R> {
  for (;;) {
    const step = await stream.next();
    if (step.done) return step.value;
  }
}
