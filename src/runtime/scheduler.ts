// Runs many sequences on one model: each step batches one decode token of every generating sequence
// with prefill chunks of newly admitted ones (up to the model's rows per step), so a long prompt never
// stalls the others for more than one chunk. Plain TypeScript over GpuLlama.step and PagedKvCache.
// A sequence ends on an end-of-sequence id or stop string ('stop'), at maxNewTokens or a full context or
// KV cache ('length'), or when its AbortSignal fires ('abort'); its pages go back to the cache at once.
// Score requests (log-probabilities of given ids after a prompt, for TriEngine.score) run in the same
// steps, after the generating sequences' rows.
import { ContextOverflowError, KvCacheFullError } from '../errors.ts';
import type { DocumentSpan } from '../kv/documents.ts';
import type { PagedKvCache } from '../kv/paged-cache.ts';
import { type GpuLlama, MAX_SCORE_TARGETS, type RowLogprobs, type StepSequence, seenBits } from '../model/llama-gpu.ts';
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
  /** Prompt tokens still to prefill, from position `position`. */
  pending: number[];
  position: number;
  generated: number[];
  /** Times each token was generated (frequency/presence penalties). */
  generatedCounts: Map<number, number>;
  seen: Uint32Array<ArrayBuffer>;
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
  /** Prompt tokens prefilled and skipped thanks to shared pages, since creation. */
  readonly stats = { prefilledTokens: 0, cachedTokens: 0, steps: 0 };

  constructor(model: GpuLlama, text: TextCodec) {
    this.model = model;
    this.text = text;
    this.kv = model.kv;
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
      request, kvId: sequence.id, pending: promptIds.slice(cachedTokens), position: cachedTokens, generated: [], generatedCounts: new Map(),
      seen: seenBits(this.model.spec.vocabSize, promptIds), decoder: new StreamDecoder(this.text, promptIds), text: '', emitted: 0,
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
    try {
      while (this.active.length > 0 || this.scoring.length > 0 || this.waitingScores.length > 0) {
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
        this.admitScores(); // pages freed since the last step
        if (this.active.length === 0 && this.scoring.length === 0) break;
        const { batch, members, scored } = this.planStep();
        const result = await this.model.step(batch);
        this.stats.steps++;
        // The step wrote these positions' K/V: only now may their pages be shared.
        for (const sequence of members) if (this.active.includes(sequence)) this.kv.commit(sequence.kvId, sequence.position);
        scored.forEach((job, i) => {
          if (!this.scoring.includes(job)) return;
          this.kv.commit(job.kvId, job.position);
          const rows = result.logprobs[members.length + i];
          if (rows) this.endScoring(job, undefined, rows);
        });
        members.forEach((sequence, slot) => {
          const tokenId = result.tokenIds[slot];
          if (tokenId === undefined) return; // a prefill chunk that is not the prompt's last
          try {
            this.accept(sequence, tokenId, result.logprobs[slot]?.[0]);
          } catch (error) {
            this.fail(sequence, error);
          }
        });
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

  /**
   * One decode row for every generating sequence, then prefill chunks in admission order, then score
   * requests' chunks (a request's scored tail runs whole, in one step, with its output).
   */
  private planStep(): { batch: StepSequence[]; members: Active[]; scored: Scoring[] } {
    const batch: StepSequence[] = [];
    const members: Active[] = [];
    let budget = this.model.chunkTokens;
    const add = (sequence: Active, tokens: number[]) => {
      const kv = this.kv.sequence(sequence.kvId);
      const finishesPrompt = sequence.pending.length === 0;
      batch.push({
        pages: kv.pages, tokens, startPos: sequence.position, documents: sequence.request.documents,
        output: finishesPrompt
          ? {
            kind: 'sample', sampling: sequence.request.sampling, step: sequence.generated.length, seen: sequence.seen, generated: sequence.generatedCounts,
            ...(sequence.request.logprobs ? { logprobs: sequence.request.logprobs } : {}),
          }
          : undefined,
      });
      members.push(sequence);
      sequence.position += tokens.length;
      budget -= tokens.length;
    };
    for (const sequence of this.active) {
      if (sequence.pending.length > 0 || batch.length >= this.model.maxSequences || budget === 0) continue;
      add(sequence, [sequence.generated.at(-1)!]);
    }
    for (const sequence of this.active) {
      if (sequence.pending.length === 0 || batch.length >= this.model.maxSequences || budget === 0) continue;
      add(sequence, sequence.pending.splice(0, budget));
    }
    const scored: Scoring[] = [];
    let outputRows = batch.filter((entry) => entry.output).length;
    for (const job of this.scoring) {
      if (batch.length >= this.model.maxSequences || budget === 0) break;
      const tail = job.request.targets.length;
      const beforeTail = job.pending.length - tail;
      let tokens: number[];
      let output: StepSequence['output'];
      if (beforeTail > 0) {
        tokens = job.pending.splice(0, Math.min(budget, beforeTail));
      } else {
        if (tail > budget || outputRows + tail > this.model.maxSequences) continue; // next step
        tokens = job.pending.splice(0, tail);
        output = { kind: 'scores', rows: tokens.map((_, i) => i), targets: job.request.targets, ...(job.request.topK ? { topK: job.request.topK } : {}) };
        outputRows += tail;
      }
      batch.push({ pages: this.kv.sequence(job.kvId).pages, tokens, startPos: job.position, output });
      scored.push(job);
      job.position += tokens.length;
      budget -= tokens.length;
    }
    return { batch, members, scored };
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
    if (request.stopIds.has(tokenId)) {
      this.finish(sequence, 'stop');
      return;
    }
    if (logprobs) {
      const text = (id: number) => this.text.decode([id], { skipSpecialTokens: false });
      sequence.logprobs.push({ tokenId, text: text(tokenId), logprob: logprobs.logprobs[0]!, top: logprobs.top.map(({ id, logprob }) => ({ tokenId: id, text: text(id), logprob })) });
    }
    sequence.seen[tokenId >> 5]! |= 1 << (tokenId & 31);
    sequence.generatedCounts.set(tokenId, (sequence.generatedCounts.get(tokenId) ?? 0) + 1);
    sequence.text += sequence.decoder.push(tokenId);
    const stopAt = firstStop(sequence.text, request.stopStrings);
    if (stopAt >= 0) {
      sequence.text = sequence.text.slice(0, stopAt);
      this.finish(sequence, 'stop', { flush: false }); // whatever the decoder holds comes after the stop string
      return;
    }
    this.emit(sequence, tokenId);
    // The new token would be written at `position`: there must be room for it.
    if (sequence.generated.length >= request.maxNewTokens || sequence.position >= this.model.contextLength) {
      this.finish(sequence, 'length');
      return;
    }
    try {
      this.model.copyKvPages(this.kv.append(sequence.kvId, [tokenId]).copies);
    } catch (error) {
      if (!(error instanceof KvCacheFullError)) throw error;
      this.finish(sequence, 'length'); // no page left for the next position: the context is full here
    }
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

  private release(sequence: Active): void {
    const index = this.active.indexOf(sequence);
    if (index < 0) return; // already finished
    this.active.splice(index, 1);
    this.kv.finish(sequence.kvId);
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
