// Runs many sequences on one model: each step batches one decode token of every generating sequence
// with prefill chunks of newly admitted ones (up to the model's rows per step), so a long prompt never
// stalls the others for more than one chunk. Plain TypeScript over GpuLlama.step and PagedKvCache.
// A sequence ends on an end-of-sequence id or stop string ('stop'), at maxNewTokens or a full context or
// KV cache ('length'), or when its AbortSignal fires ('abort'); its pages go back to the cache at once.
import { ContextOverflowError, KvCacheFullError } from '../errors.ts';
import type { DocumentSpan } from '../kv/documents.ts';
import type { PagedKvCache } from '../kv/paged-cache.ts';
import { type GpuLlama, type StepSequence, seenBits } from '../model/llama-gpu.ts';
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
}

export interface GenerationChunk {
  /** New text, never a broken UTF-8 character (may be '' while a character is incomplete; held back
   *  while it could be the start of a stop string). */
  text: string;
  /** The token that completed this text (the last one again for text flushed at the end). */
  tokenId: number;
}

export interface GenerationResult {
  text: string;
  tokenIds: number[];
  finishReason: FinishReason;
  /** cachedPromptTokens: prompt tokens whose KV came from the cache (an earlier turn or shared prefix). */
  usage: { promptTokens: number; completionTokens: number; cachedPromptTokens: number };
  /** Seconds spent in prefill, and decode tokens per second after the first token. */
  timings: { prefillSeconds: number; decodeTokensPerSecond: number };
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
}

export class Scheduler {
  readonly kv: PagedKvCache;
  private readonly model: GpuLlama;
  private readonly text: TextCodec;
  private readonly active: Active[] = [];
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
      cachedTokens, startedAt: performance.now(), firstTokenAt: undefined, events,
    });
    this.stats.cachedTokens += cachedTokens;
    if (!this.looping) void this.run();
    return events.stream();
  }

  /** Ends every sequence with `error` now (the model is going away) and refuses new ones. */
  close(error: Error): void {
    this.closedWith = error;
    for (const sequence of [...this.active]) this.fail(sequence, error);
  }

  private async run(): Promise<void> {
    this.looping = true;
    try {
      while (this.active.length > 0) {
        for (const sequence of [...this.active]) {
          if (sequence.request.signal?.aborted) this.finish(sequence, 'abort');
        }
        if (this.active.length === 0) break;
        const { batch, members } = this.planStep();
        const result = await this.model.step(batch);
        this.stats.steps++;
        // The step wrote these positions' K/V: only now may their pages be shared.
        for (const sequence of members) if (this.active.includes(sequence)) this.kv.commit(sequence.kvId, sequence.position);
        members.forEach((sequence, slot) => {
          const tokenId = result.tokenIds[slot];
          if (tokenId === undefined) return; // a prefill chunk that is not the prompt's last
          try {
            this.accept(sequence, tokenId);
          } catch (error) {
            this.fail(sequence, error);
          }
        });
      }
    } catch (error) {
      // A failed step (device lost, GPU error) ends every sequence with that error; new ones may follow.
      for (const sequence of [...this.active]) this.fail(sequence, error);
    } finally {
      this.looping = false;
    }
  }

  /** One decode row for every generating sequence, then prefill chunks in admission order. */
  private planStep(): { batch: StepSequence[]; members: Active[] } {
    const batch: StepSequence[] = [];
    const members: Active[] = [];
    let budget = this.model.chunkTokens;
    const add = (sequence: Active, tokens: number[]) => {
      const kv = this.kv.sequence(sequence.kvId);
      const finishesPrompt = sequence.pending.length === 0;
      batch.push({
        pages: kv.pages, tokens, startPos: sequence.position, documents: sequence.request.documents,
        output: finishesPrompt
          ? { kind: 'sample', sampling: sequence.request.sampling, step: sequence.generated.length, seen: sequence.seen, generated: sequence.generatedCounts }
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
    return { batch, members };
  }

  private accept(sequence: Active, tokenId: number): void {
    const { request } = sequence;
    sequence.firstTokenAt ??= performance.now();
    sequence.generated.push(tokenId);
    if (request.stopIds.has(tokenId)) {
      this.finish(sequence, 'stop');
      return;
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
      sequence.events.push({ text: sequence.text.slice(sequence.emitted, end), tokenId });
      sequence.emitted = end;
    }
  }

  private finish(sequence: Active, finishReason: FinishReason, { flush = true } = {}): void {
    if (flush) sequence.text += sequence.decoder.flush();
    const rest = sequence.text.slice(sequence.emitted);
    if (rest) sequence.events.push({ text: rest, tokenId: sequence.generated.at(-1) ?? -1 });
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
