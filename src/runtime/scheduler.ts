// Runs many sequences on one model: each step batches one decode token of every generating sequence
// with prefill chunks of newly admitted ones (up to the model's rows per step), so a long prompt never
// stalls the others for more than one chunk. Plain TypeScript over GpuLlama.step and PagedKvCache.
// A sequence ends on an end-of-sequence id or stop string ('stop'), at maxNewTokens or a full context or
// KV cache ('length'), or when its AbortSignal fires ('abort'); its pages go back to the cache at once.
// Score requests (log-probabilities of given ids after a prompt, for TriEngine.score) run in the same
// steps, after the generating sequences' rows.
// Decode is pipelined: step N+1 is queued while step N runs, its decode rows reading the ids step N draws
// straight from the GPU (SAMPLED_TOKEN), so the GPU never idles through a readback round trip. A stop found
// in step N's ids (end-of-sequence id, stop string, abort) ends the sequence then: the row step N+1 already
// runs for it is discarded and its position never committed. Length limits are known ahead and never
// queue a row past them.
import { ContextOverflowError, KvCacheFullError } from '../errors.ts';
import type { DocumentSpan } from '../kv/documents.ts';
import type { PagedKvCache } from '../kv/paged-cache.ts';
import { type GpuLlama, MAX_SCORE_TARGETS, type RowLogprobs, SAMPLED_TOKEN, type StepResult, type StepSequence, seenBits } from '../model/llama-gpu.ts';
import { StreamDecoder } from '../text/stream-decoder.ts';
import type { TextCodec } from '../text/tokenizer.ts';
import type { SamplingConfig } from './sampling.ts';
import { AsyncQueue } from './stream.ts';

export type FinishReason = 'stop' | 'length' | 'abort';

export interface SequenceRequest {
  promptIds: readonly number[];
  /** Document spans over the prompt (packed documents under a mask); default: one causal prompt. */
  documents?: readonly DocumentSpan[];
  sampling: SamplingConfig;
  maxNewTokens: number;
  stopIds: ReadonlySet<number>;
  /** Stop when the text contains any of these; the stop string itself is not returned. */
  stopStrings?: readonly string[];
  signal?: AbortSignal;
  /** Return each generated token's log-probability and the topK (0..20) most likely alternatives. */
  logprobs?: { topK: number };
}

/** A generated token's log-probability under the model (before penalties and temperature), with alternatives. */
export interface TokenLogprob {
  tokenId: number;
  /** The token decoded alone (a token holding part of a UTF-8 character shows U+FFFD). */
  text: string;
  logprob: number;
  /** The most likely tokens at this position, most likely first. */
  top: { tokenId: number; text: string; logprob: number }[];
}

export interface GenerationChunk {
  /** New text, never a broken UTF-8 character (may be '' while a character is incomplete; held back
   *  while it could be the start of a stop string). */
  text: string;
  /** The token that completed this text (the last one again for text flushed at the end). */
  tokenId: number;
  /** With `logprobs`: the tokens generated since the previous chunk (a chunk may hold several, or none). */
  logprobs?: TokenLogprob[];
}

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  /** cachedPromptTokens: prompt tokens whose KV came from the cache (an earlier turn or shared prefix). */
  usage: { promptTokens: number; completionTokens: number; cachedPromptTokens: number };
  /** Seconds spent in prefill, and decode tokens per second after the first token. */
  timings: { prefillSeconds: number; decodeTokensPerSecond: number };
  /** With `logprobs`: every generated token's, in order (an end-of-sequence token is not included). */
  logprobs?: TokenLogprob[];
}

interface Active {
  request: SequenceRequest;
  kvId: number;
  /** Prompt tokens still to prefill, from position `position` (the next position a step will run). */
  pending: number[];
  position: number;
  generated: number[];
  /** Ids drawn by queued steps and not read yet (at most one when a step is planned). */
  queued: number;
  /** The GPU sampler state it holds from its first draw to its end (seen bits, counts, last drawn id). */
  stateSlot: number | undefined;
  decoder: StreamDecoder;
  text: string;
  emitted: number; // characters of `text` already streamed
  cachedTokens: number;
  startedAt: number;
  firstTokenAt: number | undefined;
  events: AsyncQueue<GenerationChunk, GenerationResult>;
  /** With `logprobs`: every accepted token's, and how many of them chunks have carried. */
  logprobs: TokenLogprob[];
  logprobsEmitted: number;
}

/**
 * Log-probabilities after the last `targets.length` tokens of `ids` (row i of that tail: of the ids
 * targets[i]), computed on the GPU. The ids' leading full KV pages come from the cache when another
 * sequence computed the same prefix: scoring several continuations of one prompt prefills it once.
 */
export interface ScoreRequest {
  ids: readonly number[];
  targets: readonly (readonly number[])[];
  topK?: number;
  signal?: AbortSignal;
}

export interface ScoreResult {
  rows: RowLogprobs[];
  /** Tokens of `ids` whose KV came from the cache, and tokens computed. */
  cachedTokens: number;
  computedTokens: number;
}

/** A step queued on the GPU, and what its results belong to. */
interface QueuedStep {
  result: Promise<StepResult>;
  /** Generating sequences in batch order, each with the position its rows end at. */
  members: { sequence: Active; end: number }[];
  scored: { job: Scoring; end: number }[];
}

interface Scoring {
  request: ScoreRequest;
  kvId: number;
  /** Tokens still to run, from `position`; the last targets.length of them run in one step with the output. */
  pending: number[];
  position: number;
  cachedTokens: number;
  resolve: (result: ScoreResult) => void;
  reject: (error: unknown) => void;
}

export class Scheduler {
  readonly kv: PagedKvCache;
  private readonly model: GpuLlama;
  private readonly text: TextCodec;
  private readonly active: Active[] = [];
  private readonly scoring: Scoring[] = [];
  /** Score requests waiting for KV pages, in arrival order. */
  private readonly waitingScores: { request: ScoreRequest; resolve: (result: ScoreResult) => void; reject: (error: unknown) => void }[] = [];
  /** Set by close(): every later submit fails with it. */
  private closedWith: Error | undefined;
  /** Whether the step loop is running (set and cleared synchronously, so no admission can miss it). */
  private looping = false;
  /**
   * Prompt tokens prefilled and skipped thanks to shared pages, steps run, and steps queued while another
   * was still running (pipelined), since creation.
   */
  readonly stats = { prefilledTokens: 0, cachedTokens: 0, steps: 0, overlappedSteps: 0 };
  /**
   * Steps queued on the GPU at once: 2 (the default) queues the next step while one runs; 1 waits for
   * each step's ids before planning the next (the unpipelined loop, kept for comparison in benchmarks).
   */
  readonly stepsInFlight: number;
  /** GPU sampler state slots no sequence holds (StepSequence.stateSlot). */
  private readonly freeStateSlots: number[];

  constructor(model: GpuLlama, text: TextCodec, options: { stepsInFlight?: number } = {}) {
    this.model = model;
    this.text = text;
    this.kv = model.kv;
    this.stepsInFlight = options.stepsInFlight ?? 2;
    if (!Number.isInteger(this.stepsInFlight) || this.stepsInFlight < 1 || this.stepsInFlight > 2) throw new RangeError(`stepsInFlight is 1 or 2 (got ${this.stepsInFlight})`);
    this.freeStateSlots = Array.from({ length: model.maxSequences }, (_, i) => model.maxSequences - 1 - i);
  }

  get activeSequences(): number {
    return this.active.length;
  }

  /**
   * Admits a sequence and returns its stream of text deltas, ending with its result. Throws (before
   * anything runs) ContextOverflowError or KvCacheFullError when the prompt cannot fit.
   */
  submit(request: SequenceRequest): AsyncGenerator<GenerationChunk, GenerationResult> {
    if (this.closedWith) throw this.closedWith;
    const { promptIds } = request;
    if (promptIds.length === 0) throw new RangeError('the prompt is empty: give at least one token');
    if (promptIds.length >= this.model.contextLength) throw new ContextOverflowError(promptIds.length, this.model.contextLength);
    const shareable = request.documents === undefined;
    const { sequence, cachedTokens } = this.kv.createSequence(promptIds, { shareable });
    try {
      this.model.copyKvPages(this.kv.append(sequence.id, promptIds.slice(cachedTokens)).copies);
    } catch (error) {
      this.kv.finish(sequence.id);
      throw error;
    }
    const events = new AsyncQueue<GenerationChunk, GenerationResult>();
    this.active.push({
      request, kvId: sequence.id, pending: promptIds.slice(cachedTokens), position: cachedTokens, generated: [], queued: 0, stateSlot: undefined,
      decoder: new StreamDecoder(this.text, promptIds), text: '', emitted: 0,
      cachedTokens, startedAt: performance.now(), firstTokenAt: undefined, events, logprobs: [], logprobsEmitted: 0,
    });
    this.stats.cachedTokens += cachedTokens;
    if (!this.looping) void this.run();
    return events.stream();
  }

  /** Most positions one score request covers: its tail runs in one step, one logits row each. */
  get maxScoredPositions(): number {
    return Math.min(this.model.chunkTokens, this.model.maxSequences);
  }

  /**
   * Scores a request in the step loop, batched with whatever else runs. Rejects before anything runs with
   * ContextOverflowError when the ids exceed the context, RangeError for a malformed request; one the KV
   * cache cannot hold now waits for pages (KvCacheFullError only when nothing else holds any).
   */
  score(request: ScoreRequest): Promise<ScoreResult> {
    if (this.closedWith) return Promise.reject(this.closedWith);
    const { ids, targets } = request;
    const tail = targets.length;
    const maxTail = this.maxScoredPositions;
    if (tail < 1 || tail > maxTail) return Promise.reject(new RangeError(`a score request covers 1 to ${maxTail} positions (got ${tail})`));
    if (tail > ids.length) return Promise.reject(new RangeError(`${tail} positions to score, but only ${ids.length} ids`));
    for (const row of targets) {
      if (row.length < 1 || row.length > MAX_SCORE_TARGETS) return Promise.reject(new RangeError(`1 to ${MAX_SCORE_TARGETS} ids are scored per position (got ${row.length})`));
      if (row.some((id) => !Number.isInteger(id) || id < 0 || id >= this.model.spec.vocabSize)) return Promise.reject(new RangeError(`a scored id is outside the vocabulary (0..${this.model.spec.vocabSize - 1})`));
    }
    if (ids.length > this.model.contextLength) return Promise.reject(new ContextOverflowError(ids.length, this.model.contextLength));
    return new Promise<ScoreResult>((resolve, reject) => {
      this.waitingScores.push({ request, resolve, reject });
      this.admitScores();
      if (!this.looping) void this.run();
    });
  }

  /**
   * Admits waiting score requests in order while the KV cache has pages for them. One that does not fit
   * waits for running work to free pages (many questions scored at once must not fail for that); with
   * nothing running, it fails with KvCacheFullError.
   */
  private admitScores(): void {
    while (this.waitingScores.length > 0) {
      const { request, resolve, reject } = this.waitingScores[0]!;
      const { ids, targets } = request;
      // Share cached pages only up to the tail: its rows must be computed to be read.
      const { sequence, cachedTokens } = this.kv.createSequence(ids.slice(0, ids.length - targets.length + 1), { shareable: true });
      try {
        this.model.copyKvPages(this.kv.append(sequence.id, ids.slice(cachedTokens)).copies);
      } catch (error) {
        this.kv.finish(sequence.id);
        if (error instanceof KvCacheFullError && (this.active.length > 0 || this.scoring.length > 0)) return; // wait
        this.waitingScores.shift();
        reject(error);
        continue;
      }
      this.waitingScores.shift();
      this.stats.cachedTokens += cachedTokens;
      this.scoring.push({ request, kvId: sequence.id, pending: ids.slice(cachedTokens), position: cachedTokens, cachedTokens, resolve, reject });
    }
  }

  /** Ends every sequence with `error` now (the model is going away) and refuses new ones. */
  close(error: Error): void {
    this.closedWith = error;
    for (const sequence of [...this.active]) this.fail(sequence, error);
    for (const job of [...this.scoring]) this.endScoring(job, error);
    for (const waiting of this.waitingScores.splice(0)) waiting.reject(error);
  }

  private async run(): Promise<void> {
    this.looping = true;
    const queued: QueuedStep[] = [];
    try {
      while (this.active.length > 0 || this.scoring.length > 0 || this.waitingScores.length > 0 || queued.length > 0) {
        this.endAborted();
        this.admitScores(); // pages freed since the last step
        if (this.active.length === 0 && this.scoring.length === 0 && queued.length === 0) break;
        if (queued.length < this.stepsInFlight) {
          const step = this.planStep();
          if (step) {
            if (queued.length > 0) this.stats.overlappedSteps++;
            queued.push(step);
            this.stats.steps++;
            continue; // queue another while this one runs
          }
        }
        const step = queued.shift();
        if (!step) throw new Error('the scheduler has sequences but no step to run'); // a bug, not a user error
        this.finishStep(step, await step.result);
      }
    } catch (error) {
      // A failed step (device lost, GPU error) ends every sequence with that error; new ones may follow.
      for (const sequence of [...this.active]) this.fail(sequence, error);
      for (const job of [...this.scoring]) this.endScoring(job, error);
      for (const waiting of this.waitingScores.splice(0)) waiting.reject(error);
    } finally {
      this.looping = false;
    }
  }

  /** Ends aborted sequences and score requests (a sequence's queued row, if any, is discarded). */
  private endAborted(): void {
    for (const sequence of [...this.active]) {
      if (sequence.request.signal?.aborted) this.finish(sequence, 'abort');
    }
    for (const job of [...this.scoring]) {
      if (job.request.signal?.aborted) this.endScoring(job, job.request.signal.reason ?? new DOMException('aborted', 'AbortError'));
    }
    for (const waiting of [...this.waitingScores]) {
      const { signal } = waiting.request;
      if (!signal?.aborted) continue;
      this.waitingScores.splice(this.waitingScores.indexOf(waiting), 1);
      waiting.reject(signal.reason ?? new DOMException('aborted', 'AbortError'));
    }
  }

  /** A step's results: commits the positions it wrote, resolves score requests, accepts drawn ids. */
  private finishStep({ members, scored }: QueuedStep, result: StepResult): void {
    // The step wrote these positions' K/V: only now may their pages be shared.
    for (const { sequence, end } of members) if (this.active.includes(sequence)) this.kv.commit(sequence.kvId, end);
    scored.forEach(({ job, end }, i) => {
      if (!this.scoring.includes(job)) return;
      this.kv.commit(job.kvId, end);
      const rows = result.logprobs[members.length + i];
      if (rows) this.endScoring(job, undefined, rows);
    });
    members.forEach(({ sequence }, slot) => {
      const tokenId = result.tokenIds[slot];
      if (tokenId === undefined || !this.active.includes(sequence)) return; // a prefill chunk, or a row of a sequence that has ended
      sequence.queued--;
      try {
        this.accept(sequence, tokenId, result.logprobs[slot]?.[0]);
      } catch (error) {
        this.fail(sequence, error);
      }
    });
  }

  /**
   * Plans and queues a step: one decode row for every generating sequence, then prefill chunks in
   * admission order, then score requests' chunks (a request's scored tail runs whole, in one step, with
   * its output). Undefined when nothing can run before a queued step's ids are read.
   */
  private planStep(): QueuedStep | undefined {
    const batch: StepSequence[] = [];
    const members: QueuedStep['members'] = [];
    const { maxSequences, contextLength } = this.model;
    let budget = this.model.chunkTokens;
    const add = (sequence: Active, tokens: number[]) => {
      const finishesPrompt = sequence.pending.length === 0;
      let seen: Uint32Array<ArrayBuffer> | undefined;
      if (finishesPrompt && sequence.stateSlot === undefined) {
        sequence.stateSlot = this.freeStateSlots.pop()!;
        seen = seenBits(this.model.spec.vocabSize, sequence.request.promptIds); // the slot's state starts from the prompt
      }
      batch.push({
        pages: this.kv.sequence(sequence.kvId).pages, tokens, startPos: sequence.position, documents: sequence.request.documents, stateSlot: sequence.stateSlot,
        output: finishesPrompt
          ? {
            kind: 'sample', sampling: sequence.request.sampling, step: sequence.generated.length + sequence.queued,
            ...(seen ? { seen } : {}), ...(sequence.request.logprobs ? { logprobs: sequence.request.logprobs } : {}),
          }
          : undefined,
      });
      if (finishesPrompt) sequence.queued++;
      sequence.position += tokens.length;
      members.push({ sequence, end: sequence.position });
      budget -= tokens.length;
    };
    for (const sequence of [...this.active]) {
      if (sequence.pending.length > 0 || batch.length >= maxSequences || budget === 0) continue;
      // One unread id at a time, and never a row past the length limits (known before the ids are).
      if (sequence.queued > 1 || sequence.generated.length + sequence.queued >= sequence.request.maxNewTokens || sequence.position >= contextLength) continue;
      const token = sequence.queued > 0 ? SAMPLED_TOKEN : sequence.generated.at(-1)!;
      try {
        this.model.copyKvPages(this.kv.append(sequence.kvId, [token]).copies); // SAMPLED_TOKEN is named when read (accept)
      } catch (error) {
        if (!(error instanceof KvCacheFullError)) throw error;
        // No page left for the next position: the context is full here (once every drawn id is in).
        if (sequence.queued === 0) this.finish(sequence, 'length');
        continue;
      }
      add(sequence, [token]);
    }
    for (const sequence of this.active) {
      if (sequence.pending.length === 0 || batch.length >= maxSequences || budget === 0) continue;
      let take = Math.min(budget, sequence.pending.length);
      // The prompt's last token draws an id and needs a state slot: without a free one, stop just before it.
      if (take === sequence.pending.length && this.freeStateSlots.length === 0) take--;
      if (take > 0) add(sequence, sequence.pending.splice(0, take));
    }
    const scored: QueuedStep['scored'] = [];
    let outputRows = batch.filter((entry) => entry.output).length;
    for (const job of this.scoring) {
      if (batch.length >= maxSequences || budget === 0) break;
      const tail = job.request.targets.length;
      const beforeTail = job.pending.length - tail;
      let tokens: number[];
      let output: StepSequence['output'];
      if (beforeTail > 0) {
        tokens = job.pending.splice(0, Math.min(budget, beforeTail));
      } else {
        if (job.pending.length === 0 || tail > budget || outputRows + tail > maxSequences) continue; // queued already, or next step
        tokens = job.pending.splice(0, tail);
        output = { kind: 'scores', rows: tokens.map((_, i) => i), targets: job.request.targets, ...(job.request.topK ? { topK: job.request.topK } : {}) };
        outputRows += tail;
      }
      batch.push({ pages: this.kv.sequence(job.kvId).pages, tokens, startPos: job.position, output });
      job.position += tokens.length;
      scored.push({ job, end: job.position });
      budget -= tokens.length;
    }
    if (batch.length === 0) return undefined;
    const result = this.model.step(batch); // queued on the GPU now; its ids are read while the next step is planned
    result.catch(() => {}); // a failure is handled where the result is awaited
    return { result, members, scored };
  }

  /** A score request ends: with its rows, or with an error; its pages go back (full ones stay cached). */
  private endScoring(job: Scoring, error: unknown, rows?: RowLogprobs[]): void {
    const index = this.scoring.indexOf(job);
    if (index < 0) return;
    this.scoring.splice(index, 1);
    this.kv.finish(job.kvId);
    if (rows) {
      const computedTokens = job.request.ids.length - job.cachedTokens;
      this.stats.prefilledTokens += computedTokens;
      job.resolve({ rows, cachedTokens: job.cachedTokens, computedTokens });
    } else {
      job.reject(error);
    }
  }

  private accept(sequence: Active, tokenId: number, logprobs: RowLogprobs | undefined): void {
    const { request } = sequence;
    sequence.firstTokenAt ??= performance.now();
    sequence.generated.push(tokenId);
    // Where this token is (or will be) run; a queued step may have reserved the position for it already.
    const position = request.promptIds.length + sequence.generated.length - 1;
    if (request.stopIds.has(tokenId)) {
      this.finish(sequence, 'stop');
      return;
    }
    if (position < this.kv.sequence(sequence.kvId).tokens.length) this.kv.setToken(sequence.kvId, position, tokenId);
    if (logprobs) {
      const text = (id: number) => this.text.decode([id], { skipSpecialTokens: false });
      sequence.logprobs.push({ tokenId, text: text(tokenId), logprob: logprobs.logprobs[0]!, top: logprobs.top.map(({ id, logprob }) => ({ tokenId: id, text: text(id), logprob })) });
    }
    sequence.text += sequence.decoder.push(tokenId);
    const stopAt = firstStop(sequence.text, request.stopStrings);
    if (stopAt >= 0) {
      sequence.text = sequence.text.slice(0, stopAt);
      this.finish(sequence, 'stop', { flush: false }); // whatever the decoder holds comes after the stop string
      return;
    }
    this.emit(sequence, tokenId);
    // The new token would be written at `position`: there must be room for it.
    if (sequence.generated.length >= request.maxNewTokens || position >= this.model.contextLength) this.finish(sequence, 'length');
  }

  /** Streams the text that can no longer become part of a stop string. */
  private emit(sequence: Active, tokenId: number): void {
    const holdBack = Math.max(0, ...(sequence.request.stopStrings ?? []).map((stop) => stop.length - 1));
    let end = Math.max(sequence.emitted, sequence.text.length - holdBack);
    // Never split a surrogate pair (a character outside the BMP) between two deltas.
    if (end > sequence.emitted && end < sequence.text.length && /[\uD800-\uDBFF]/.test(sequence.text[end - 1]!)) end--;
    if (end > sequence.emitted || holdBack === 0) {
      sequence.events.push({ text: sequence.text.slice(sequence.emitted, end), tokenId, ...this.newLogprobs(sequence) });
      sequence.emitted = end;
    }
  }

  /** The tokens' log-probabilities no chunk has carried yet (when the request asked for them). */
  private newLogprobs(sequence: Active): { logprobs?: TokenLogprob[] } {
    if (!sequence.request.logprobs) return {};
    const logprobs = sequence.logprobs.slice(sequence.logprobsEmitted);
    sequence.logprobsEmitted = sequence.logprobs.length;
    return { logprobs };
  }

  private finish(sequence: Active, finishReason: FinishReason, { flush = true } = {}): void {
    if (flush) sequence.text += sequence.decoder.flush();
    const rest = sequence.text.slice(sequence.emitted);
    const pendingLogprobs = sequence.request.logprobs && sequence.logprobsEmitted < sequence.logprobs.length;
    if (rest || pendingLogprobs) sequence.events.push({ text: rest, tokenId: sequence.generated.at(-1) ?? -1, ...this.newLogprobs(sequence) });
    sequence.emitted = sequence.text.length;
    this.release(sequence);
    const now = performance.now();
    const firstTokenAt = sequence.firstTokenAt ?? now;
    const decodeSeconds = (now - firstTokenAt) / 1000;
    const promptTokens = sequence.request.promptIds.length;
    this.stats.prefilledTokens += promptTokens - sequence.cachedTokens;
    sequence.events.end({
      text: sequence.text,
      tokenIds: sequence.generated,
      finishReason,
      usage: { promptTokens, completionTokens: sequence.generated.length, cachedPromptTokens: sequence.cachedTokens },
      timings: {
        prefillSeconds: (firstTokenAt - sequence.startedAt) / 1000,
        decodeTokensPerSecond: sequence.generated.length > 1 && decodeSeconds > 0 ? (sequence.generated.length - 1) / decodeSeconds : 0,
      },
      ...(sequence.request.logprobs ? { logprobs: sequence.logprobs } : {}),
    });
  }

  private fail(sequence: Active, error: unknown): void {
    this.release(sequence);
    sequence.events.fail(error);
  }

  /**
   * Its pages and state slot go back. A step still queued may write its discarded row into them: later
   * steps, queued after it, overwrite whatever it leaves before anything reads it.
   */
  private release(sequence: Active): void {
    const index = this.active.indexOf(sequence);
    if (index < 0) return; // already finished
    this.active.splice(index, 1);
    this.kv.finish(sequence.kvId);
    if (sequence.stateSlot !== undefined) this.freeStateSlots.push(sequence.stateSlot);
  }
}

function firstStop(text: string, stops: readonly string[] | undefined): number {
  let first = -1;
  for (const stop of stops ?? []) {
    const at = stop ? text.indexOf(stop) : -1;
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  return first;
}
