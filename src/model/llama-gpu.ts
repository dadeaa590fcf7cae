// The Llama graph on the GPU: weights in a chosen format (f32, f16 or q4, converted on the GPU at load),
// a paged KV cache, and 6 dispatches per layer (7 when decode splits attention over the keys):
//   qkv = RMSNorm(x)·[Wq;Wk;Wv]ᵀ (norm weight folded into W) → RoPE + KV store into pages → masked
//   attention → x += attended·Woᵀ → gate = silu(RMSNorm(x)·Wgᵀ)·(RMSNorm(x)·Wuᵀ) → x += gate·Wdᵀ
// then, for each sequence that needs it, logits = RMSNorm(x_last)·W_headᵀ and the sampler. One `step`
// runs the new tokens of several sequences together (prefill chunks and decode tokens alike) in one
// submit; only the sampled ids (4 bytes each) or, for tests, the logits come back. A decoding sequence's
// sampler state (its seen bits, token counts and last drawn id) stays on the GPU in a state slot, so the
// next step can be queued before the id is read: its token is SAMPLED_TOKEN, copied on the GPU from the
// slot. A decode step's layers are replayed as an earlier step of the same shape recorded them (their
// Params do not change from token to token), so the host pays little more than the WebGPU calls. Which
// pages a sequence owns is decided by src/kv/paged-cache.ts; this file only reads its page tables.
import { ContextOverflowError, GpuLimitError, GpuOutOfMemoryError, InvalidRequestError, UnsupportedModelError } from '../errors.ts';
import { type GpuContext, checkBufferSize } from '../gpu/context.ts';
import { CommandRecorder, RecordedDispatches } from '../gpu/recorder.ts';
import { type DocumentSpan, documentAt } from '../kv/documents.ts';
import { KV_PAGE_TOKENS, type KvPageCopy, PagedKvCache } from '../kv/paged-cache.ts';
import { type KvCacheFormat, attention, attentionPartialBytes, kvTokenBytes } from '../ops/attention.ts';
import { type BatchTables, batchTablesBytes, packBatchTables } from '../ops/batch-tables.ts';
import { embedding } from '../ops/embedding.ts';
import { gatherRows } from '../ops/gather-rows.ts';
import { type GemvChoice, type GpuMatrix, LINEAR_SPLIT_K_CHOICES, linear, linearGemvChoices, placeholderBuffer } from '../ops/linear.ts';
import { LINEAR_TILE, LINEAR_TILED_MIN_ROWS, linearTiled } from '../ops/linear-tiled.ts';
import { ropeKv } from '../ops/rope-kv.ts';
import { logSoftmax, MAX_TOP_LOGPROBS } from '../ops/log-softmax.ts';
import { SAMPLE_ROW_BYTES, type SampleRow, sample } from '../ops/sample.ts';
import { type SamplingConfig, samplingConfig, usesTokenCounts } from '../runtime/sampling.ts';
import { ArtifactWeights } from './artifact.ts';
import { type LlamaSpec, ropeCosSinTable } from './config.ts';
import { GpuWeightUploader, type MatrixSpec, type PendingMatrix, allocateMatrix, destroyGpuMatrix, gpuMatrixBuffers, matrixPartLimit } from './gpu-weights.ts';
import { checkLlamaCheckpoint, llamaTensorLayout } from './llama-weights.ts';
import type { PackedWeights, WeightFormatOptions } from './quant.ts';
import type { SafetensorsCheckpoint } from './safetensors.ts';
import { SyntheticWeights } from './synthetic.ts';

export interface GpuLlamaOptions {
  /** KV cache length in tokens; defaults to the model's max_position_embeddings. */
  contextLength?: number;
  /** Most rows (tokens over all sequences) in one step; longer prompts are split. */
  chunkTokens?: number;
  /** Most sequences in one step. */
  maxSequences?: number;
  /** KV pages of KV_PAGE_TOKENS positions, shared by all sequences; default: one full context's worth. */
  kvPages?: number;
  /** Element type of the KV cache: f32 (exact) or f16 (half the memory); default f32. */
  kvCache?: KvCacheFormat;
  /** Split-K of the decode GEMVs (1, 4 or 16); default: the fastest on this device, timed at load. */
  linearSplitK?: number;
  /**
   * The subgroup variants of the kernels (split-K GEMVs adding their shares by shuffles, the sampler's
   * reductions by subgroups first): true uses them (a GpuLimitError where the device has no `subgroups`),
   * false never; default: each where it measured faster at load.
   */
  subgroups?: boolean;
  /** Prefill steps (16 rows or more) through the tiled GEMM (kernels/linear-tiled.wgsl); default: if faster here, timed at load. */
  tiledPrefill?: boolean;
  /** Format of the weight matrices (default f32). */
  weights?: WeightFormatOptions;
  /** Format of the output head; defaults to `weights`. */
  lmHead?: WeightFormatOptions;
  /** Refuse (GpuOutOfMemoryError, before allocating) a plan above this many bytes; default: the device's budget when known. */
  maxGpuBytes?: number;
  /** Called after each chunk of weights with checkpoint bytes read so far and in all. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
}

export type { KvCacheFormat };

const DEFAULT_CHUNK_TOKENS = 64;
const MAX_GPU_SPANS = 4096;
const DEFAULT_MAX_SEQUENCES = 16;
/** Largest split-KV factor: decode rows spread their keys over up to this many invocations. */
const MAX_ATTENTION_SPLITS = 16;
/** Attention splits its KV range only below this many (row, head) pairs: enough parallelism otherwise. */
const SPLIT_ROW_HEADS = 256;

interface LayerMatrices {
  qkv: GpuMatrix; //    [(heads + 2·kvHeads)·headDim][hidden], input norm folded in
  o: GpuMatrix; //      [hidden][heads·headDim]
  gateUp: GpuMatrix; // gate and up [ffn][hidden] pair, post-attention norm folded in
  down: GpuMatrix; //   [hidden][ffn]
}

interface Activations {
  tokenIds: GPUBuffer; //  [rows] u32
  tables: GPUBuffer; //    rows, sequences, page tables, documents (src/ops/batch-tables.ts)
  x: GPUBuffer; //         [rows][hidden], the residual stream
  qkv: GPUBuffer; //       [rows][(heads + 2·kvHeads)·headDim]
  q: GPUBuffer; //         [rows][heads·headDim], rotated
  attended: GPUBuffer; //  [rows][heads·headDim]
  partials: GPUBuffer; //  split-KV scratch
  gate: GPUBuffer; //      [rows][ffn]
  outputRows: GPUBuffer; //[slots] u32: the row whose logits each output needs
  lastHidden: GPUBuffer; //[slots][hidden]
  logits: GPUBuffer; //    [slots][vocab]
  seen: GPUBuffer; //      [state slots][ceil(vocab / 32)] u32 bits: tokens in the context (repetition penalty)
  counts: GPUBuffer; //    [state slots][vocab] u32: times each token was generated (frequency/presence penalties)
  lastIds: GPUBuffer; //   [state slots] u32: the id each slot's sampler drew last
  sampleRows: GPUBuffer; //[slots] sampler settings (src/ops/sample.ts), one dispatch for all
  nextIds: GPUBuffer; //   [slots] u32
  scoreTargets: GPUBuffer; // [slots][MAX_SCORE_TARGETS] u32: ids to score after each output row
  scores: GPUBuffer; //    [slots][MAX_SCORE_TARGETS] f32: their log-probabilities
  topIds: GPUBuffer; //    [slots][MAX_TOP_LOGPROBS] u32
  topLogprobs: GPUBuffer; //[slots][MAX_TOP_LOGPROBS] f32
}

interface Capacity {
  rows: number;
  slots: number;
  contextLength: number;
}

const pagesPerContext = (contextLength: number) => Math.ceil(contextLength / KV_PAGE_TOKENS);
/** Bytes per sequence of repetition-penalty bits, padded to the 256-byte storage binding offset alignment. */
const seenStride = (vocabSize: number) => Math.ceil((Math.ceil(vocabSize / 32) * 4) / 256) * 256;
/** Bytes per sequence of generated-token counts, padded the same way (Tri-7B: 513 KB, 8 MB for 16 slots). */
const countsStride = (vocabSize: number) => Math.ceil((vocabSize * 4) / 256) * 256;

function activationBytes(spec: LlamaSpec, { rows, slots, contextLength }: Capacity): Record<keyof Activations, number> {
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize } = spec;
  return {
    tokenIds: rows * 4,
    tables: batchTablesBytes(rows, slots, pagesPerContext(contextLength)),
    x: rows * h * 4,
    qkv: rows * (numHeads + 2 * numKvHeads) * headDim * 4,
    q: rows * numHeads * headDim * 4,
    attended: rows * numHeads * headDim * 4,
    // Split attention runs on fewer than SPLIT_ROW_HEADS row-heads (attentionSplits), whatever the slots:
    // a prefill chunk's tail of a few rows splits too, so size for the most split row-heads, not per slot.
    partials: Math.max(attentionPartialBytes(Math.min(rows * numHeads, SPLIT_ROW_HEADS - 1), 1, headDim, MAX_ATTENTION_SPLITS), attentionPartialBytes(rows, numHeads, headDim, 1)),
    gate: rows * f * 4,
    outputRows: slots * 4,
    lastHidden: slots * h * 4,
    logits: slots * vocabSize * 4,
    seen: slots * seenStride(vocabSize),
    counts: slots * countsStride(vocabSize),
    nextIds: slots * 4,
    lastIds: slots * 4,
    sampleRows: slots * SAMPLE_ROW_BYTES,
    scoreTargets: slots * MAX_SCORE_TARGETS * 4,
    scores: slots * MAX_SCORE_TARGETS * 4,
    topIds: slots * MAX_TOP_LOGPROBS * 4,
    topLogprobs: slots * MAX_TOP_LOGPROBS * 4,
  };
}

const kvCacheBytes = (spec: LlamaSpec, pages: number, format: KvCacheFormat) => pages * KV_PAGE_TOKENS * kvTokenBytes(spec.numKvHeads, spec.headDim, format);

/** The matrices of the graph, as stacks of checkpoint tensors; each RMSNorm weight is folded into the matrix it feeds. */
export function matrixSpecs(spec: LlamaSpec): { embed: MatrixSpec; layers: Record<keyof LayerMatrices, MatrixSpec>[]; lmHead: MatrixSpec } {
  const layout = llamaTensorLayout(spec);
  return {
    embed: { label: 'embed', tensors: [layout.embed.name] },
    layers: layout.layers.map((l, i) => ({
      qkv: { label: `layers.${i}.qkv`, tensors: [l.wq.name, l.wk.name, l.wv.name], columnScaleTensor: l.attnNorm.name },
      o: { label: `layers.${i}.o`, tensors: [l.wo.name] },
      gateUp: { label: `layers.${i}.gateUp`, tensors: [l.wGate.name, l.wUp.name], gatedPair: true, columnScaleTensor: l.ffnNorm.name },
      down: { label: `layers.${i}.down`, tensors: [l.wDown.name] },
    })),
    lmHead: { label: 'lmHead', tensors: [layout.lmHead.name], columnScaleTensor: layout.finalNorm.name },
  };
}

/** The graph matrices in order (embedding, each layer's qkv/o/gateUp/down, head): what an artifact stores. */
export function graphMatrices(spec: LlamaSpec): MatrixSpec[] {
  const specs = matrixSpecs(spec);
  return [specs.embed, ...specs.layers.flatMap((layer) => [layer.qkv, layer.o, layer.gateUp, layer.down]), specs.lmHead];
}

/**
 * Weight bytes a load reads (what its progress counts): an artifact's shards; or each graph matrix's
 * tensors once (a tied head twice: it is converted again with the final norm folded in).
 */
export function weightBytesRead(spec: LlamaSpec, source: SafetensorsCheckpoint | ArtifactWeights | SyntheticWeights): number {
  if (source instanceof SyntheticWeights) return 0;
  if (source instanceof ArtifactWeights) return source.manifest.shards.reduce((sum, shard) => sum + shard.bytes, 0);
  return graphMatrices(spec).flatMap((m) => m.tensors).reduce((sum, name) => sum + source.get(name)!.byteLength, 0);
}

/** The shapes of the tensors stacked in each graph matrix, by label, from the config alone. */
export function matrixShapes(spec: LlamaSpec): (label: string) => number[][] {
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize } = spec;
  const layerShapes: Record<string, number[][]> = {
    qkv: [[numHeads * headDim, h], [numKvHeads * headDim, h], [numKvHeads * headDim, h]],
    o: [[h, numHeads * headDim]],
    gateUp: [[f, h], [f, h]],
    down: [[h, f]],
  };
  return (label) => (label === 'embed' || label === 'lmHead' ? [[vocabSize, h]] : layerShapes[label.split('.').at(-1)!]!);
}

/** Every GPU buffer the model allocates (weights, RoPE table, K and V caches, activations), in bytes. */
export function gpuLlamaMemoryPlan(
  spec: LlamaSpec, contextLength: number,
  options: { chunkTokens?: number; maxSequences?: number; kvPages?: number; kvCache?: KvCacheFormat; weights?: WeightFormatOptions; lmHead?: WeightFormatOptions; bindingLimit?: number } = {},
): { buffers: { label: string; bytes: number }[]; totalBytes: number } {
  const capacity = { rows: options.chunkTokens ?? DEFAULT_CHUNK_TOKENS, slots: options.maxSequences ?? DEFAULT_MAX_SEQUENCES, contextLength };
  const kvPages = options.kvPages ?? pagesPerContext(contextLength);
  const format = options.weights ?? { format: 'f32' };
  const limit = options.bindingLimit ?? Infinity;
  const { headDim } = spec;
  const shapes = matrixShapes(spec);
  const buffers = [
    ...graphMatrices(spec).flatMap((matrix) => gpuMatrixBuffers(matrix, shapes(matrix.label), matrix.label === 'lmHead' ? (options.lmHead ?? format) : format, limit)),
    { label: 'rope.cosSin', bytes: contextLength * headDim * 4 },
    ...Array.from({ length: 2 * spec.numLayers }, (_, i) => ({ label: `${i % 2 ? 'v' : 'k'}Cache.${i >> 1}`, bytes: kvCacheBytes(spec, kvPages, options.kvCache ?? 'f32') })),
    ...Object.entries(activationBytes(spec, capacity)).map(([label, bytes]) => ({ label, bytes })),
  ];
  return { buffers, totalBytes: buffers.reduce((sum, b) => sum + b.bytes, 0) };
}

/**
 * A step token standing for the id the sequence's state slot drew last (in an earlier step, possibly still
 * running): the GPU copies it into place, so the step can be queued before that id is read back.
 */
export const SAMPLED_TOKEN = -1;

/** One sequence's part of a step: new tokens at positions startPos.., and what to return after the last. */
export interface StepSequence {
  /** Page table (src/kv/paged-cache.ts) covering positions [0, startPos + tokens.length). */
  pages: readonly number[];
  /** Token ids (or image row ids, or SAMPLED_TOKEN as the first token with a stateSlot). */
  tokens: readonly number[];
  startPos: number;
  /**
   * The sampler state this sequence keeps on the GPU between steps (0..maxSequences − 1, one sequence
   * each): its seen bits, token counts and last drawn id. Default: the index of its output in the step,
   * with seen bits given by each step's output.
   */
  stateSlot?: number;
  /** Document spans of the whole sequence (src/kv/documents.ts); default: one causal document. */
  documents?: readonly DocumentSpan[];
  /**
   * After the last token: draw the next id, or return logits, or log-probabilities of chosen ids (after the
   * tokens at `rows`, default the last).
   */
  output?: SampleOutput | { kind: 'logits'; rows?: readonly number[] } | ScoresOutput;
}

/** Most ids scored after one row (a multiple-choice question's letters, one continuation token). */
export const MAX_SCORE_TARGETS = 16;

/**
 * Log-probabilities under the full-vocabulary softmax, computed on the GPU: after each of `rows`
 * (default the last token), of the ids `targets[i]` (at most MAX_SCORE_TARGETS), and the `topK` (≤ 20)
 * most likely ids. Only these numbers are read back.
 */
export interface ScoresOutput {
  kind: 'scores';
  rows?: readonly number[];
  targets: readonly (readonly number[])[];
  topK?: number;
}

/** Log-probabilities read back for one row. */
export interface RowLogprobs {
  /** Of the targets asked for (a sampled row: of the sampled id). */
  logprobs: number[];
  /** The most likely ids, most likely first (ties to the lower id). */
  top: { id: number; logprob: number }[];
}

/**
 * Draw the next id with `sampling`. The drawn id joins the state slot's seen bits and counts on the GPU;
 * `seen` (the context's bit set) and `generated` (the completion's token counts) replace that state first.
 */
export interface SampleOutput {
  kind: 'sample';
  sampling: SamplingConfig;
  /** The RNG counter: the index of the token being drawn. */
  step: number;
  /** Omitted: the slot's state from the steps before (its prompt's bits and every id drawn since). */
  seen?: Uint32Array<ArrayBuffer>;
  /** With `seen`, for frequency/presence penalties (omitted: none generated yet). */
  generated?: ReadonlyMap<number, number>;
  /** Also return the sampled id's log-probability (the model's, before penalties and temperature) and the top k. */
  logprobs?: { topK: number };
}

export interface StepResult {
  /** Per sequence: the sampled id, if it asked for one. */
  tokenIds: (number | undefined)[];
  /** Per sequence: the logits it asked for, one array per requested row. */
  logits: (Float32Array[] | undefined)[];
  /** Per sequence: the log-probabilities it asked for (scores: one per requested row; sample with logprobs: one). */
  logprobs: (RowLogprobs[] | undefined)[];
}

/** One row of logits a step computes: whose output it serves, and which of that output's rows it is. */
interface OutputRow {
  output: NonNullable<StepSequence['output']>;
  row: number;
  /** A sampled row's StepSequence.stateSlot. */
  stateSlot?: number;
}

function checkScores(output: ScoresOutput, slot: number): void {
  const rows = output.rows?.length ?? 1;
  if (output.targets.length !== rows) throw new RangeError(`sequence ${slot} asks for scores after ${rows} rows but gives targets for ${output.targets.length}`);
  for (const targets of output.targets) {
    if (targets.length === 0 || targets.length > MAX_SCORE_TARGETS) throw new RangeError(`scores: 1 to ${MAX_SCORE_TARGETS} ids per row (got ${targets.length})`);
  }
  if ((output.topK ?? 0) > MAX_TOP_LOGPROBS) throw new RangeError(`top logprobs go up to ${MAX_TOP_LOGPROBS} (asked for ${output.topK})`);
}

export class GpuLlama {
  readonly spec: LlamaSpec;
  readonly contextLength: number;
  /** Most rows in one step. */
  readonly chunkTokens: number;
  /** Most sequences in one step. */
  readonly maxSequences: number;
  readonly kvCacheFormat: KvCacheFormat;
  /** Split-K of the decode GEMVs (linear.wgsl) and whether its shares add by subgroup shuffles, chosen at load. */
  linearSplitK = 1;
  linearSubgroups = false;
  /** Whether the sampler reduces by subgroups first (sample.wgsl), chosen at load. */
  samplerSubgroups = false;
  /** Whether steps of LINEAR_TILED_MIN_ROWS rows or more run the tiled GEMM, chosen at load. */
  tiledPrefill = false;
  /** Dispatches recorded by the last step (or single-sequence forward call). */
  lastDispatchCount = 0;
  /** Host (JS) time of the last step: building its tables, recording its dispatches and submitting them, in ms. */
  lastHostMs = 0;
  /** For benchmarks: time each step on the GPU with timestamp queries (costs a readback per step). */
  timeGpu = false;
  /**
   * Decode steps (a row per sequence) replay their layers' dispatches as recorded by an earlier step of
   * the same shape (RecordedDispatches), instead of recording them anew. For benchmarks: false records all.
   */
  replayDecodeLayers = true;
  private readonly layerRecordings = new Map<string, RecordedDispatches>();
  /** Steps whose layers were replayed, and recorded for replay, since load (for tests and benchmarks). */
  readonly replayStats = { replayed: 0, recorded: 0 };
  /**
   * Input rows that are not tokens (a vision model's image features): a step token id at or above
   * vocabSize is looked up here and its row written in place of an embedding (src/runtime/image-rows.ts).
   */
  inputRows: ((id: number) => Float32Array | undefined) | undefined;
  /** GPU time of the last step (or forward call) when `timeGpu` is on and the device has timestamp-query, in ms. */
  lastGpuMs: number | undefined;
  /**
   * With `timeGpu`, when each step ran on the GPU's clock (the last MAX_GPU_SPANS): the gaps between one
   * step's end and the next one's start are the GPU's idle time (gpuIdleShare).
   */
  readonly gpuSpans: { startMs: number; endMs: number }[] = [];
  private readonly gpu: GpuContext;
  private readonly embed: GpuMatrix;
  private readonly layers: LayerMatrices[];
  private readonly lmHead: GpuMatrix;
  private readonly ropeTable: GPUBuffer; // [contextLength][headDim/2] (cos, sin)
  private readonly keyCache: GPUBuffer[]; //   per layer [page][KV_PAGE_TOKENS][kvHeads·headDim]
  private readonly valueCache: GPUBuffer[];
  private readonly act: Activations;
  /** Which KV pages each sequence owns: shared by the scheduler and the single-sequence helpers below. */
  readonly kv: PagedKvCache;
  /** The sequence behind forwardSample/forwardLogits/reset (tests and simple callers). */
  private ownSequence: number;

  private constructor(
    gpu: GpuContext, spec: LlamaSpec, matrices: { embed: GpuMatrix; layers: LayerMatrices[]; lmHead: GpuMatrix },
    capacity: Capacity, kvPages: number, kvCacheFormat: KvCacheFormat,
  ) {
    this.gpu = gpu;
    this.spec = spec;
    this.embed = matrices.embed;
    this.layers = matrices.layers;
    this.lmHead = matrices.lmHead;
    this.contextLength = capacity.contextLength;
    this.chunkTokens = capacity.rows;
    this.maxSequences = capacity.slots;
    this.kvCacheFormat = kvCacheFormat;
    const kvBytes = kvCacheBytes(spec, kvPages, kvCacheFormat);
    this.ropeTable = gpu.createBuffer('rope.cosSin', capacity.contextLength * spec.headDim * 4);
    this.keyCache = this.layers.map((_, l) => gpu.createBuffer(`kCache.${l}`, kvBytes));
    this.valueCache = this.layers.map((_, l) => gpu.createBuffer(`vCache.${l}`, kvBytes));
    const sizes = activationBytes(spec, capacity);
    this.act = Object.fromEntries(
      Object.entries(sizes).map(([name, bytes]) => [name, gpu.createBuffer(name, bytes)]),
    ) as unknown as Activations;
    this.kv = new PagedKvCache(kvPages);
    this.ownSequence = this.kv.createSequence([], { shareable: false }).sequence.id;
  }

  /**
   * Loads the weights onto the GPU: a checkpoint's tensors converted there (kernels/quantize.wgsl), or a
   * pre-converted artifact's buffers uploaded as they are (src/model/artifact.ts, verified per shard), or
   * a synthetic model's made on the GPU from a seed (src/model/synthetic.ts, for benchmarks).
   */
  static async load(gpu: GpuContext, spec: LlamaSpec, source: SafetensorsCheckpoint | ArtifactWeights | SyntheticWeights, options: GpuLlamaOptions = {}): Promise<GpuLlama> {
    const artifact = source instanceof ArtifactWeights ? source : undefined;
    const synthetic = source instanceof SyntheticWeights ? source : undefined;
    const checkpoint = artifact || synthetic ? undefined : (source as SafetensorsCheckpoint);
    const contextLength = Math.min(options.contextLength ?? spec.maxPositions, spec.maxPositions);
    const chunkTokens = Math.min(options.chunkTokens ?? DEFAULT_CHUNK_TOKENS, contextLength);
    const weights = artifact ? artifact.checkFormat(options.weights) : (options.weights ?? { format: 'f32' });
    const lmHeadFormat = artifact ? weights : (options.lmHead ?? weights);
    if (checkpoint) checkLlamaCheckpoint(spec, checkpoint);
    checkKernelShapes(spec);
    if (options.subgroups && !gpu.capabilities.subgroups) throw new GpuLimitError('subgroups: true, but this device has no "subgroups" feature');
    // Refuse what cannot fit before a single weight byte is read (or downloaded): first every buffer
    // against the binding limit (matrices over it are split into parts; an artifact's parts are fixed),
    // then the whole allocation.
    const limit = artifact ? artifact.manifest.partBytes : matrixPartLimit(gpu);
    const maxSequences = options.maxSequences ?? DEFAULT_MAX_SEQUENCES;
    const kvPages = options.kvPages ?? pagesPerContext(contextLength);
    const kvCache = options.kvCache ?? 'f32';
    const plan = gpuLlamaMemoryPlan(spec, contextLength, { chunkTokens, maxSequences, kvPages, kvCache, weights, lmHead: lmHeadFormat, bindingLimit: limit });
    for (const { label, bytes } of plan.buffers) checkBufferSize(gpu.capabilities, label, bytes);
    // A plan beyond what the device can hold is refused here: allocating it anyway ran a CPU adapter out
    // of memory and Dawn then crashed the process (SIGSEGV) when the device was destroyed.
    const budget = options.maxGpuBytes ?? gpu.capabilities.memoryBudgetBytes;
    if (budget !== undefined && plan.totalBytes > budget) {
      throw new GpuOutOfMemoryError(plan.totalBytes, `the plan needs more than the ${(budget / 2 ** 30).toFixed(2)} GiB this device can hold`);
    }

    const specs = matrixSpecs(spec);
    const shapes = matrixShapes(spec);
    const totalBytes = weightBytesRead(spec, source);
    let loadedBytes = 0;
    const onBytes = (bytes: number) => options.onProgress?.((loadedBytes += bytes), totalBytes);
    const uploader = new GpuWeightUploader(gpu, { signal: options.signal, onBytes });
    const pending: PendingMatrix[] = [];
    const artifactMatrices = new Map<string, GpuMatrix>();
    const syntheticMatrices: GpuMatrix[] = [];
    let model: GpuLlama | undefined;
    const releaseAll = () => {
      for (const { matrix } of pending) destroyGpuMatrix(matrix);
      for (const matrix of syntheticMatrices) destroyGpuMatrix(matrix);
      for (const matrix of artifactMatrices.values()) destroyGpuMatrix(matrix);
      model?.destroyBuffers();
    };
    await gpu.allocateOrThrow(plan.totalBytes, () => {
      const allocate = (matrix: MatrixSpec, format: WeightFormatOptions): GpuMatrix => {
        if (artifact) {
          const allocated = artifact.allocate(gpu, artifact.matrix(matrix, shapes(matrix.label)));
          artifactMatrices.set(matrix.label, allocated);
          return allocated;
        }
        if (synthetic) {
          const allocated = allocateMatrix(gpu, matrix, shapes(matrix.label), format).matrix;
          syntheticMatrices.push(allocated);
          return allocated;
        }
        const result = uploader.allocate(matrix, checkpoint!, format);
        pending.push(result);
        return result.matrix;
      };
      const embed = allocate(specs.embed, weights);
      const layers = specs.layers.map((matrices) => ({
        qkv: allocate(matrices.qkv, weights),
        o: allocate(matrices.o, weights),
        gateUp: allocate(matrices.gateUp, weights),
        down: allocate(matrices.down, weights),
      }));
      const lmHead = allocate(specs.lmHead, lmHeadFormat);
      model = new GpuLlama(gpu, spec, { embed, layers, lmHead }, { rows: chunkTokens, slots: maxSequences, contextLength }, kvPages, kvCache);
    }, releaseAll);

    try {
      gpu.device.queue.writeBuffer(model!.ropeTable, 0, ropeCosSinTable(spec, contextLength));
      if (artifact) await artifact.fill(gpu, artifactMatrices, { onBytes, signal: options.signal });
      for (const matrix of pending) await uploader.fill(matrix);
      synthetic?.fill(gpu, syntheticMatrices);
      await gpu.device.queue.onSubmittedWorkDone();
      gpu.checkHealthy();
      const gemv = await model!.fastestGemv(options.linearSplitK, options.subgroups);
      model!.linearSplitK = gemv.splitK;
      model!.linearSubgroups = gemv.subgroups;
      model!.samplerSubgroups = await model!.useSamplerSubgroups(options.subgroups);
      model!.tiledPrefill = options.tiledPrefill ?? (await model!.tiledPrefillIsFaster());
      return model!;
    } catch (error) {
      releaseAll();
      throw error;
    } finally {
      uploader.finish();
    }
  }

  /**
   * Times one layer's gate/up GEMV with each split-K choice on this device (with subgroup shuffles too,
   * where the adapter has subgroups) and returns the fastest: big GPUs need more invocations than one per 4
   * rows, while on SwiftShader the barrier it needs costs more than it gains (split-K 4 and 16 measured
   * 0.5–0.9× the speed of no split). A choice must beat the best so far by 10%, so timing noise on small
   * models keeps the plain kernel. A subgroup variant must also give the plain kernel's outputs (to 1e-4):
   * it assumes a row quad's lanes share a subgroup, which WebGPU does not promise.
   */
  private async fastestGemv(forcedSplitK: number | undefined, subgroups: boolean | undefined): Promise<GemvChoice> {
    const choices = linearGemvChoices(this.gpu.capabilities, forcedSplitK === undefined ? LINEAR_SPLIT_K_CHOICES : [forcedSplitK])
      .filter((choice) => subgroups === undefined || choice.subgroups === subgroups);
    if (choices.length === 0) {
      // Forced subgroups with split-K 1 (no shares to add) is the plain GEMV.
      if (forcedSplitK === 1) return { splitK: 1, subgroups: false };
      throw new GpuLimitError(`split-K ${forcedSplitK} with subgroups needs subgroups of at least ${forcedSplitK} lanes (this adapter's smallest: ${this.gpu.capabilities.subgroupMinSize})`);
    }
    const layer = this.layers[0];
    // Nothing to choose, or nothing to time it on; a subgroup variant is still checked below.
    if (!layer || (choices.length === 1 && !choices[0]!.subgroups)) return choices[0]!;
    const gemv = (recorder: CommandRecorder, choice: GemvChoice) =>
      linear(recorder, { x: this.act.x, weights: layer.gateUp, y: this.act.gate, m: 1, normalizeEps: this.spec.rmsNormEps, epilogue: 'siluGate', ...choice });
    const outputBytes = 4 * layer.gateUp.parts.reduce((sum, part) => sum + part.outputs, 0);
    // An input that is not all zeros (act.x is fresh here), so that the comparison means something.
    const input = Float32Array.from({ length: this.spec.hiddenSize }, (_, i) => Math.sin(i + 1));
    this.gpu.device.queue.writeBuffer(this.act.x, 0, input);
    const plain = new Float32Array(await this.readAfter((recorder) => gemv(recorder, { splitK: 1, subgroups: false }), this.act.gate, outputBytes));
    const scale = plain.reduce((most, value) => Math.max(most, Math.abs(value)), 1e-6);
    let best: { choice: GemvChoice; ms: number } | undefined;
    for (const choice of choices) {
      if (choice.subgroups) {
        const result = new Float32Array(await this.readAfter((recorder) => gemv(recorder, choice), this.act.gate, outputBytes));
        if (result.some((value, i) => !(Math.abs(value - plain[i]!) <= 1e-4 * scale))) {
          if (subgroups) throw new GpuLimitError(`the subgroup GEMV (split-K ${choice.splitK}) disagrees with the plain kernel on this device: load without subgroups: true`);
          continue;
        }
      }
      const ms = await this.bestTimeMs((recorder) => {
        for (let i = 0; i < 8; i++) gemv(recorder, choice);
      });
      if (!best || ms < 0.9 * best.ms) best = { choice, ms };
    }
    return best!.choice;
  }

  /**
   * Whether the sampler reduces by subgroups: `forced` if given, else if it is faster here than the plain
   * one, timed on a draw with top-k 40 and top-p 0.9 (65 reductions: the heaviest case), by 10%. Either way
   * it must draw the same tokens as the plain one (greedy and sampled) over logits of this vocabulary: it
   * assumes a subgroup is a run of consecutive lanes, which WebGPU does not promise.
   */
  private async useSamplerSubgroups(forced: boolean | undefined): Promise<boolean> {
    if (forced === false || !this.gpu.capabilities.subgroups) return false;
    const vocab = this.spec.vocabSize;
    const { act } = this;
    this.gpu.device.queue.writeBuffer(act.logits, 0, Float32Array.from({ length: vocab }, (_, i) => 6 * Math.sin(i * 0.7 + Math.cos(i))));
    const configs = [{}, { temperature: 0.8, topK: 40, topP: 0.9, seed: 1 }, { temperature: 1, seed: 2 }, { temperature: 0.7, topP: 0.95, minP: 0.05, seed: 3 }].map(samplingConfig);
    const draw = (recorder: CommandRecorder, config: SamplingConfig, step: number, subgroups: boolean) => sample(recorder, {
      logits: act.logits, seen: act.seen, counts: act.counts, result: act.nextIds, rowTable: act.sampleRows, vocab, subgroups,
      rows: [{ config, step, offset: 0, resultIndex: 0, seenStart: 0, countsStart: 0 }],
    });
    const draws = async (subgroups: boolean) => {
      const ids: number[] = [];
      for (const [step, config] of configs.entries()) ids.push(new Uint32Array(await this.readAfter((recorder) => draw(recorder, config, step, subgroups), act.nextIds, 4))[0]!);
      return ids.join();
    };
    if ((await draws(true)) !== (await draws(false))) {
      if (forced) throw new GpuLimitError('the subgroup sampler draws other tokens than the plain one on this device: load without subgroups: true');
      return false;
    }
    if (forced) return true;
    const timed = (subgroups: boolean) => this.bestTimeMs((recorder) => {
      for (let i = 0; i < 2; i++) draw(recorder, configs[1]!, i, subgroups);
    });
    const plainMs = await timed(false);
    return (await timed(true)) < 0.9 * plainMs;
  }

  /** `byteLength` bytes of `buffer` after what `record` records has run (for checking a kernel variant). */
  private async readAfter(record: (recorder: CommandRecorder) => void, buffer: GPUBuffer, byteLength: number): Promise<ArrayBuffer> {
    const recorder = new CommandRecorder(this.gpu);
    record(recorder);
    recorder.submit();
    return this.gpu.readBack(buffer, byteLength);
  }

  /**
   * Times one layer's output projection over a tile of rows with the row-quad kernel and the tiled one.
   * The tiled kernel reads each weight once per 32 rows instead of 4, which is what a GPU's memory wants,
   * but it needs 2 barriers per 32 K, which SwiftShader runs slowly: it must win by 10% to be chosen.
   * (The output projection, not gate/up: for Tri-7B a fifth of the work, which matters on SwiftShader.)
   */
  private async tiledPrefillIsFaster(): Promise<boolean> {
    const layer = this.layers[0];
    const m = Math.min(this.chunkTokens, LINEAR_TILE);
    if (!layer || m < LINEAR_TILED_MIN_ROWS) return false;
    const timed = (matmul: typeof linear) => this.bestTimeMs((recorder) => matmul(recorder, { x: this.act.attended, weights: layer.o, y: this.act.x, m }));
    const rowQuadsMs = await timed(linear);
    return (await timed(linearTiled)) < 0.9 * rowQuadsMs;
  }

  /** The best of two timed submits of what `record` records, after one that compiles its pipelines; in ms. */
  private async bestTimeMs(record: (recorder: CommandRecorder) => void): Promise<number> {
    const time = async () => {
      const recorder = new CommandRecorder(this.gpu);
      record(recorder);
      const start = performance.now();
      recorder.submit();
      await this.gpu.device.queue.onSubmittedWorkDone();
      return performance.now() - start;
    };
    await time();
    const best = Math.min(await time(), await time());
    this.gpu.checkHealthy(); // a failed kernel must not pass as a fast one
    return best;
  }

  /** KV pages of KV_PAGE_TOKENS positions, shared by all sequences. */
  get kvPages(): number {
    return this.kv.pageCount;
  }

  /** Positions of the single sequence behind forwardSample/forwardLogits. */
  get length(): number {
    return this.kv.sequence(this.ownSequence).tokens.length;
  }

  /**
   * For benchmarks: extends the single sequence by `count` positions without computing them (their K/V
   * are whatever the cache holds), so decode can be timed at a long context without paying its prefill.
   */
  assumePositions(count: number): void {
    if (this.length + count > this.contextLength) throw new ContextOverflowError(this.length + count, this.contextLength);
    const { copies } = this.kv.append(this.ownSequence, new Array<number>(count).fill(0));
    this.copyKvPages(copies);
  }

  /** Starts the single sequence over (its pages return to the pool). */
  reset(): void {
    this.kv.finish(this.ownSequence);
    this.ownSequence = this.kv.createSequence([], { shareable: false }).sequence.id;
  }

  /** Runs `tokens` on the single sequence; returns the next id, drawn with `sampling` (greedy by default). */
  async forwardSample(tokens: readonly number[], sampling: SamplingConfig = samplingConfig(), step = 0): Promise<number> {
    const result = await this.forwardOwn(tokens, (seen) => ({ kind: 'sample', sampling, step, seen }));
    return result.tokenIds[0]!;
  }

  /** Runs `tokens` on the single sequence; returns the greedy next id after the last one. */
  forwardArgmax(tokens: readonly number[]): Promise<number> {
    return this.forwardSample(tokens);
  }

  /** Runs `tokens` on the single sequence; returns the logits after the last one. */
  async forwardLogits(tokens: readonly number[]): Promise<Float32Array> {
    const result = await this.forwardOwn(tokens, () => ({ kind: 'logits' }));
    return result.logits[0]![0]!;
  }

  private async forwardOwn(tokens: readonly number[], output: (seen: Uint32Array<ArrayBuffer>) => StepSequence['output']): Promise<StepResult> {
    if (tokens.length === 0) throw new RangeError('forward needs at least one token');
    const start = this.length;
    if (start + tokens.length > this.contextLength) throw new ContextOverflowError(start + tokens.length, this.contextLength);
    const { copies } = this.kv.append(this.ownSequence, tokens);
    this.copyKvPages(copies);
    const sequence = this.kv.sequence(this.ownSequence);
    const seen = seenBits(this.spec.vocabSize, sequence.tokens);
    let result: StepResult = { tokenIds: [], logits: [], logprobs: [] };
    let dispatches = 0;
    let gpuMs: number | undefined = 0;
    for (let offset = 0; offset < tokens.length; offset += this.chunkTokens) {
      const chunk = tokens.slice(offset, offset + this.chunkTokens);
      const isLast = offset + this.chunkTokens >= tokens.length;
      result = await this.step([{ pages: sequence.pages, tokens: chunk, startPos: start + offset, output: isLast ? output(seen) : undefined }]);
      dispatches += this.lastDispatchCount;
      gpuMs = gpuMs === undefined || this.lastGpuMs === undefined ? undefined : gpuMs + this.lastGpuMs;
    }
    this.lastDispatchCount = dispatches;
    this.lastGpuMs = gpuMs;
    return result;
  }

  /** Copies whole KV pages (all layers): copy-on-write of pages shared between sequences. */
  copyKvPages(copies: readonly KvPageCopy[]): void {
    if (copies.length === 0) return;
    const pageBytes = kvCacheBytes(this.spec, 1, this.kvCacheFormat);
    const encoder = this.gpu.device.createCommandEncoder();
    for (const { from, to } of copies) {
      for (const cache of [...this.keyCache, ...this.valueCache]) encoder.copyBufferToBuffer(cache, from * pageBytes, cache, to * pageBytes, pageBytes);
    }
    this.gpu.device.queue.submit([encoder.finish()]);
  }

  /**
   * Runs the new tokens of several sequences in one submit: each writes its K/V into its pages and attends
   * (under its document mask) to its own earlier positions. Returns the sampled ids and logits asked for.
   */
  async step(batch: readonly StepSequence[]): Promise<StepResult> {
    const rowCount = batch.reduce((sum, entry) => sum + entry.tokens.length, 0);
    if (batch.length === 0 || rowCount === 0) throw new RangeError('a step needs at least one token');
    if (rowCount > this.chunkTokens) throw new RangeError(`a step takes at most ${this.chunkTokens} tokens (got ${rowCount})`);
    if (batch.length > this.maxSequences) throw new RangeError(`a step takes at most ${this.maxSequences} sequences (got ${batch.length})`);
    this.gpu.checkHealthy();
    const hostStart = performance.now();
    const { vocabSize, hiddenSize: h } = this.spec;
    const queue = this.gpu.device.queue;

    // The batch's tables: each row's sequence, position and document; each sequence's pages and documents.
    const rows: [number, number, number][] = [];
    const sequences = [];
    const tokenIds = new Uint32Array(rowCount);
    const inputRows: { row: number; buffer: ArrayBufferLike; byteOffset: number; byteLength: number }[] = [];
    const sampledRows: { stateSlot: number; row: number }[] = [];
    const outputRows: number[] = [];
    let maxKvLength = 0;
    for (const [slot, entry] of batch.entries()) {
      const kvLength = entry.startPos + entry.tokens.length;
      if (kvLength > this.contextLength) throw new ContextOverflowError(kvLength, this.contextLength);
      if (entry.pages.length < Math.ceil(kvLength / KV_PAGE_TOKENS)) throw new RangeError(`sequence ${slot} has pages for fewer than its ${kvLength} positions`);
      maxKvLength = Math.max(maxKvLength, kvLength);
      const documents = entry.documents ?? [{ start: 0, end: this.contextLength, visibleMask: 0 }];
      sequences.push({ pages: entry.pages.slice(0, Math.ceil(kvLength / KV_PAGE_TOKENS)), kvLength, documents });
      for (const [t, token] of entry.tokens.entries()) {
        const position = entry.startPos + t;
        if (token === SAMPLED_TOKEN) {
          if (t !== 0 || entry.stateSlot === undefined) throw new RangeError(`sequence ${slot}: SAMPLED_TOKEN stands only as the first token of a sequence with a stateSlot`);
          sampledRows.push({ stateSlot: entry.stateSlot, row: rows.length });
          tokenIds[rows.length] = 0; // replaced on the GPU before the embedding runs
        } else if (token >= vocabSize) {
          const values = this.inputRows?.(token);
          if (values?.length !== h) throw new RangeError(`sequence ${slot}: id ${token} is neither a token (vocabulary ${vocabSize}) nor a known input row`);
          // An image's rows are consecutive in the step and in its features: one write for the run.
          const last = inputRows.at(-1);
          if (last && last.row + last.byteLength / (4 * h) === rows.length && last.buffer === values.buffer && last.byteOffset + last.byteLength === values.byteOffset) last.byteLength += values.byteLength;
          else inputRows.push({ row: rows.length, buffer: values.buffer, byteOffset: values.byteOffset, byteLength: values.byteLength });
          tokenIds[rows.length] = 0xffffffff; // the embedding gather leaves this row alone
        } else {
          tokenIds[rows.length] = token;
        }
        rows.push([slot, position, documentAt(documents, position)]);
      }
      const first = rows.length - entry.tokens.length;
      if (entry.output?.kind === 'scores') checkScores(entry.output, slot);
      if ((entry.output?.kind === 'logits' || entry.output?.kind === 'scores') && entry.output.rows) {
        for (const row of entry.output.rows) {
          if (!Number.isInteger(row) || row < 0 || row >= entry.tokens.length) throw new RangeError(`logits row ${row} is outside sequence ${slot}'s ${entry.tokens.length} tokens`);
          outputRows.push(first + row);
        }
      } else if (entry.output) {
        outputRows.push(rows.length - 1);
      }
    }
    if (outputRows.length > this.maxSequences) throw new RangeError(`a step returns at most ${this.maxSequences} rows of logits (asked for ${outputRows.length})`);
    const tables = packBatchTables(rows, sequences);
    queue.writeBuffer(this.act.tables, 0, tables.data);
    queue.writeBuffer(this.act.tokenIds, 0, tokenIds);
    for (const run of inputRows) queue.writeBuffer(this.act.x, run.row * h * 4, run.buffer as ArrayBuffer, run.byteOffset, run.byteLength);
    if (outputRows.length) queue.writeBuffer(this.act.outputRows, 0, new Uint32Array(outputRows));

    const recorder = new CommandRecorder(this.gpu, { timed: this.timeGpu });
    for (const { stateSlot, row } of sampledRows) recorder.copyBeforeDispatches(this.act.lastIds, stateSlot * 4, this.act.tokenIds, row * 4, 4);
    const splits = attentionSplits(rowCount * this.spec.numHeads, maxKvLength);
    if (this.replayDecodeLayers && rowCount <= this.maxSequences) {
      // A decode step's layers record the same dispatches token after token, until the batch's rows,
      // sequences or documents (the tables' layout) or the attention split (at 64 and 256 positions) change.
      const { sequencesOffset, pageTableOffset, documentsOffset } = tables;
      const key = `${rowCount} ${sequencesOffset} ${pageTableOffset} ${documentsOffset} ${splits} ${this.tiledPrefill} ${this.linearSplitK} ${this.linearSubgroups}`;
      const replayed = recorder.recordOrReplay(this.layerRecordings, key, () => this.recordLayers(recorder, rowCount, tables, splits));
      this.replayStats[replayed ? 'replayed' : 'recorded']++;
    } else {
      this.recordLayers(recorder, rowCount, tables, splits);
    }
    // Output rows in batch order, each with its index among its sequence's rows; a sampling sequence has exactly one.
    const outputs = batch.flatMap((entry): OutputRow[] => {
      const output = entry.output;
      if (!output) return [];
      return output.kind === 'sample' ? [{ output, row: 0, stateSlot: entry.stateSlot }] : (output.rows ?? [0]).map((_, row) => ({ output, row }));
    });
    const stateSlots = outputs.map(({ stateSlot }, i) => stateSlot ?? i);
    for (const [i, { output }] of outputs.entries()) {
      if (output.kind !== 'sample') continue;
      const stateSlot = stateSlots[i]!;
      if (!Number.isInteger(stateSlot) || stateSlot < 0 || stateSlot >= this.maxSequences) throw new RangeError(`state slot ${stateSlot} is outside 0..${this.maxSequences - 1}`);
      if (stateSlots.indexOf(stateSlot) !== i) throw new RangeError(`two sequences of one step share state slot ${stateSlot}`);
    }
    const seenBytes = seenStride(vocabSize);
    const countBytes = countsStride(vocabSize);
    if (outputs.length) {
      gatherRows(recorder, { rowIds: this.act.outputRows, x: this.act.x, y: this.act.lastHidden, count: outputs.length, width: h });
      linear(recorder, { x: this.act.lastHidden, weights: this.lmHead, y: this.act.logits, m: outputs.length, normalizeEps: this.spec.rmsNormEps, splitK: this.linearSplitK, subgroups: this.linearSubgroups });
      const sampled = outputs.flatMap(({ output }, i): SampleRow[] => {
        if (output.kind !== 'sample') return [];
        const stateSlot = stateSlots[i]!;
        if (output.seen) {
          queue.writeBuffer(this.act.seen, stateSlot * seenBytes, output.seen, 0, Math.ceil(vocabSize / 32));
          // Dense counts go up only when the penalties are on (Tri-7B: 513 KB per sequence).
          if (usesTokenCounts(output.sampling)) queue.writeBuffer(this.act.counts, stateSlot * countBytes, tokenCounts(vocabSize, output.generated));
        }
        return [{ config: output.sampling, step: output.step, offset: i * vocabSize, resultIndex: i, seenStart: (stateSlot * seenBytes) / 4, countsStart: (stateSlot * countBytes) / 4, stateSlot }];
      });
      const { act } = this;
      sample(recorder, {
        logits: act.logits, seen: act.seen, counts: act.counts, result: act.nextIds, lastIds: act.lastIds, rowTable: act.sampleRows, vocab: vocabSize, rows: sampled,
        subgroups: this.samplerSubgroups,
      });
      this.recordLogprobs(recorder, outputs);
    }
    recorder.submit();
    this.lastDispatchCount = recorder.dispatchCount;
    this.lastHostMs = performance.now() - hostStart;

    const result: StepResult = { tokenIds: batch.map(() => undefined), logits: batch.map(() => undefined), logprobs: batch.map(() => undefined) };
    // A step with nothing to read back (a prefill chunk) still waits for the GPU: otherwise a long prompt
    // queues every chunk at once without yielding, and an abort takes effect only after all of them.
    if (outputs.length === 0) await this.gpu.device.queue.onSubmittedWorkDone();
    // The readbacks wait for the GPU together, not one round trip after another.
    const [ids, logits, logprobs] = await Promise.all([
      outputs.some(({ output }) => output.kind === 'sample') ? this.gpu.readBack(this.act.nextIds, outputs.length * 4).then((bytes) => new Uint32Array(bytes)) : undefined,
      outputs.some(({ output }) => output.kind === 'logits') ? this.gpu.readBack(this.act.logits, outputs.length * vocabSize * 4).then((bytes) => new Float32Array(bytes)) : undefined,
      this.readLogprobs(outputs),
    ]);
    const span = await recorder.gpuSpan();
    this.lastGpuMs = span && span.endMs - span.startMs;
    if (span) this.gpuSpans.push(span);
    if (this.gpuSpans.length > MAX_GPU_SPANS) this.gpuSpans.splice(0, this.gpuSpans.length - MAX_GPU_SPANS);
    let i = 0;
    batch.forEach((entry, slot) => {
      const output = entry.output;
      if (output?.kind === 'sample') {
        if (output.logprobs) result.logprobs[slot] = [logprobs[i]!];
        result.tokenIds[slot] = ids![i++]!;
      }
      if (output?.kind === 'logits') {
        result.logits[slot] = (output.rows ?? [0]).map(() => logits!.slice(i * vocabSize, ++i * vocabSize));
      }
      if (output?.kind === 'scores') result.logprobs[slot] = (output.rows ?? [0]).map(() => logprobs[i++]!);
    });
    return result;
  }

  /**
   * Log-softmax of the output rows that ask for log-probabilities (kernels/log-softmax.wgsl): a scored row
   * at the ids written to scoreTargets, a sampled row at the id the sampler just wrote (it never leaves the
   * GPU). One dispatch per such row: at most `maxSequences`, and each reads only its row of logits.
   */
  private recordLogprobs(recorder: CommandRecorder, outputs: readonly OutputRow[]): void {
    const { act } = this;
    const common = { logits: act.logits, vocab: this.spec.vocabSize, rows: 1, out: act.scores, topIds: act.topIds, topLogprobs: act.topLogprobs };
    outputs.forEach(({ output, row }, i) => {
      const place = { firstRow: i, outStart: i * MAX_SCORE_TARGETS, topStart: i * MAX_TOP_LOGPROBS };
      if (output.kind === 'scores') {
        const targets = output.targets[row]!;
        this.gpu.device.queue.writeBuffer(act.scoreTargets, i * MAX_SCORE_TARGETS * 4, new Uint32Array(targets));
        logSoftmax(recorder, { ...common, ...place, targets: act.scoreTargets, targetStart: i * MAX_SCORE_TARGETS, targetsPerRow: targets.length, topK: output.topK ?? 0 });
      } else if (output.kind === 'sample' && output.logprobs) {
        logSoftmax(recorder, { ...common, ...place, targets: act.nextIds, targetStart: i, targetsPerRow: 1, topK: output.logprobs.topK });
      }
    });
  }

  /** Reads back what recordLogprobs wrote: a few floats per row. */
  private async readLogprobs(outputs: readonly OutputRow[]): Promise<(RowLogprobs | undefined)[]> {
    const counts = outputs.map(({ output, row }) => {
      if (output.kind === 'scores') return { targets: output.targets[row]!.length, topK: output.topK ?? 0 };
      if (output.kind === 'sample' && output.logprobs) return { targets: 1, topK: output.logprobs.topK };
      return undefined;
    });
    if (counts.every((count) => count === undefined)) return [];
    const anyTop = counts.some((count) => count && count.topK > 0);
    const topBytes = outputs.length * MAX_TOP_LOGPROBS * 4;
    const [scores, topIds, topLogprobs] = await Promise.all([
      this.gpu.readBack(this.act.scores, outputs.length * MAX_SCORE_TARGETS * 4).then((bytes) => new Float32Array(bytes)),
      anyTop ? this.gpu.readBack(this.act.topIds, topBytes).then((bytes) => new Uint32Array(bytes)) : undefined,
      anyTop ? this.gpu.readBack(this.act.topLogprobs, topBytes).then((bytes) => new Float32Array(bytes)) : undefined,
    ]);
    return counts.map((count, i) => count && {
      logprobs: Array.from(scores.subarray(i * MAX_SCORE_TARGETS, i * MAX_SCORE_TARGETS + count.targets)),
      top: Array.from({ length: count.topK }, (_, k) => ({ id: topIds![i * MAX_TOP_LOGPROBS + k]!, logprob: topLogprobs![i * MAX_TOP_LOGPROBS + k]! })),
    });
  }

  private recordLayers(recorder: CommandRecorder, rowCount: number, layout: Omit<BatchTables, 'data'>, splits: number): void {
    const { numHeads, numKvHeads, headDim, rmsNormEps: eps } = this.spec;
    const { act } = this;
    // Prefill chunks through the tiled GEMM when it measured faster here; decode always by row quads.
    const matmul = this.tiledPrefill && rowCount >= LINEAR_TILED_MIN_ROWS ? linearTiled : linear;
    embedding(recorder, { tokenIds: act.tokenIds, table: this.embed, y: act.x, tokens: rowCount });
    this.layers.forEach((layer, l) => {
      const kCache = this.keyCache[l]!;
      const vCache = this.valueCache[l]!;
      const tables = { tables: act.tables, layout };
      const splitK = this.linearSplitK;
      const subgroups = this.linearSubgroups;
      matmul(recorder, { x: act.x, weights: layer.qkv, y: act.qkv, m: rowCount, normalizeEps: eps, splitK, subgroups });
      const kvFormat = this.kvCacheFormat;
      ropeKv(recorder, { ...tables, qkv: act.qkv, cosSin: this.ropeTable, q: act.q, kCache, vCache, kvFormat, tokens: rowCount, heads: numHeads, kvHeads: numKvHeads, headDim });
      attention(recorder, {
        ...tables, q: act.q, kCache, vCache, partials: splits > 1 ? act.partials : placeholderBuffer(this.gpu, 'write'),
        out: act.attended, rowCount, heads: numHeads, kvHeads: numKvHeads, headDim, splits, kvFormat,
      });
      matmul(recorder, { x: act.attended, weights: layer.o, y: act.x, m: rowCount, epilogue: 'accumulate', splitK, subgroups });
      matmul(recorder, { x: act.x, weights: layer.gateUp, y: act.gate, m: rowCount, normalizeEps: eps, epilogue: 'siluGate', splitK, subgroups });
      matmul(recorder, { x: act.gate, weights: layer.down, y: act.x, m: rowCount, epilogue: 'accumulate', splitK, subgroups });
    });
  }

  /**
   * A weight matrix part's buffers read back from the GPU (by its graph label, as graphMatrices names
   * it): what keeping a conversion stores (src/model/kept-conversion.ts).
   */
  async readMatrixPart(label: string, index: number): Promise<PackedWeights> {
    const [, layer, name] = /^layers\.(\d+)\.(\w+)$/.exec(label) ?? [];
    const matrix = label === 'embed' ? this.embed : label === 'lmHead' ? this.lmHead : this.layers[Number(layer)]?.[name as keyof LayerMatrices];
    const part = matrix?.parts[index];
    if (!part) throw new InvalidRequestError(`no weight matrix part ${label}[${index}]`);
    const data = new Uint32Array(await this.gpu.readBack(part.data, part.layout.dataBytes));
    const scales = part.layout.scaleBytes ? new Uint32Array(await this.gpu.readBack(part.scales, part.layout.scaleBytes)) : new Uint32Array(0);
    return { layout: part.layout, data, scales };
  }

  /** Bytes of every GPU buffer the model holds, as allocated (to compare with gpuLlamaMemoryPlan). */
  get allocatedBytes(): number {
    const matrices = [this.embed, this.lmHead, ...this.layers.flatMap((layer) => Object.values(layer))];
    const weights = matrices.flatMap((matrix) => matrix.parts).reduce((sum, part) => sum + part.data.size + (part.layout.scaleBytes ? part.scales.size : 0), 0);
    return weights + [this.ropeTable, ...this.keyCache, ...this.valueCache, ...Object.values(this.act)].reduce((sum, buffer) => sum + buffer.size, 0);
  }

  destroy(): void {
    for (const matrix of [this.embed, this.lmHead, ...this.layers.flatMap((layer) => Object.values(layer))]) destroyGpuMatrix(matrix);
    this.destroyBuffers();
  }

  /** Everything but the weight matrices. */
  private destroyBuffers(): void {
    for (const buffer of [this.ropeTable, ...this.keyCache, ...this.valueCache, ...Object.values(this.act)]) buffer.destroy();
    for (const recording of this.layerRecordings.values()) recording.destroy();
    this.layerRecordings.clear();
  }
}

/**
 * The shapes the kernels take, checked before anything is downloaded (the ops check again per dispatch,
 * but by then a model that cannot run would already have been fetched): x is read as vec4 (every K a
 * multiple of 4) and attention keeps a head in at most 32 vec4 registers.
 */
export function checkKernelShapes(spec: LlamaSpec): void {
  const { hiddenSize, intermediateSize, numHeads, headDim } = spec;
  const widths: [string, number][] = [['hidden_size', hiddenSize], ['intermediate_size', intermediateSize], ['num_attention_heads × head_dim', numHeads * headDim], ['head_dim', headDim]];
  for (const [name, value] of widths) {
    if (value % 4 !== 0) throw new UnsupportedModelError(`${name} = ${value}: the kernels need multiples of 4`);
  }
  if (headDim > 128) throw new UnsupportedModelError(`head_dim = ${headDim}: the attention kernel takes at most 128`);
}

/** Split-KV factor: only when few (row, head) pairs meet long key ranges, as in decode. */
function attentionSplits(rowHeads: number, maxKvLength: number): number {
  if (rowHeads >= SPLIT_ROW_HEADS || maxKvLength < 64) return 1;
  return maxKvLength < 256 ? 4 : MAX_ATTENTION_SPLITS;
}

/** Dense per-token counts for the sampler (frequency/presence penalties). */
function tokenCounts(vocabSize: number, generated: ReadonlyMap<number, number> | undefined): Uint32Array<ArrayBuffer> {
  const counts = new Uint32Array(vocabSize);
  for (const [id, count] of generated ?? []) counts[id] = count;
  return counts;
}

/** The repetition-penalty bit set of a context: bit i set when token i occurs. */
export function seenBits(vocabSize: number, tokens: readonly number[]): Uint32Array<ArrayBuffer> {
  const bits = new Uint32Array(Math.ceil(vocabSize / 32));
  for (const id of tokens) bits[id >> 5]! |= 1 << (id & 31);
  return bits;
}

/** The share of the time from the first span's start to the last one's end in which the GPU ran none of them. */
export function gpuIdleShare(spans: readonly { startMs: number; endMs: number }[]): number {
  if (spans.length < 2) return 0;
  let idle = 0;
  for (let i = 1; i < spans.length; i++) idle += Math.max(0, spans[i]!.startMs - spans[i - 1]!.endMs);
  return idle / (spans.at(-1)!.endMs - spans[0]!.startMs);
}
