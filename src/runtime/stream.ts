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
export async function streamResult<R>(stream: AsyncIterator<unknown, R>): Promise<R> {
  for (;;) {
    const step = await stream.next();
    if (step.done) return step.value;
  }
}

/**
 * A generation's stream of chunks (an async generator, for `for await`) whose final result is also
 * reachable from a plain loop: `await stream.result` after (or while) iterating. Nothing starts before
 * the first next(), so request errors reject that call. Leaving the loop early closes the stream (the
 * sequence is aborted and its KV pages freed); `result` then resolves with finish reason 'abort'.
 */
export class GenerationStream<T, R> {
  /** The final result (finish reason, usage, timings); rejects with the stream's error. */
  readonly result: Promise<R>;
  private readonly start: () => { events: AsyncGenerator<T, R>; close: () => void };
  private started: ReturnType<GenerationStream<T, R>['start']> | undefined;
  private settle!: { resolve: (result: R) => void; reject: (error: unknown) => void };
  private finished = false;
  private closed = false;

  constructor(start: () => { events: AsyncGenerator<T, R>; close: () => void }) {
    this.start = start;
    this.result = new Promise<R>((resolve, reject) => {
      this.settle = { resolve, reject };
    });
    // The error also surfaces through next(): an unread `result` must not be an unhandled rejection.
    this.result.catch(() => {});
  }

  async next(): Promise<IteratorResult<T, R>> {
    if (this.closed) return { done: true, value: undefined as R }; // after return(): as a closed generator
    try {
      this.started ??= this.start();
      const step = await this.started.events.next();
      if (step.done) this.end(step.value);
      return step;
    } catch (error) {
      this.fail(error);
      throw error;
    }
  }

  async return(value?: R | PromiseLike<R>): Promise<IteratorResult<T, R>> {
    this.closeEarly();
    return { done: true, value: (await value) as R };
  }

  async throw(error: unknown): Promise<IteratorResult<T, R>> {
    this.closeEarly();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Stops the generation; the rest of the stream is drained in the background into `result`. */
  private closeEarly(): void {
    if (this.finished || this.closed) return;
    this.closed = true;
    if (!this.started) {
      this.finished = true;
      this.settle.reject(new DOMException('the stream was closed before it started', 'AbortError'));
      return;
    }
    const { events, close } = this.started;
    close();
    streamResult(events).then((result) => this.end(result), (error: unknown) => this.fail(error));
  }

  private end(result: R): void {
    this.finished = true;
    this.settle.resolve(result);
  }

  private fail(error: unknown): void {
    this.finished = true;
    this.settle.reject(error);
  }
}
