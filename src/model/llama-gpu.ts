// The Llama graph on the GPU: weights in a chosen format (f32, f16 or q4, converted on the GPU at load),
// a contiguous KV cache, and 6 dispatches per layer:
//   qkv = RMSNorm(x)·[Wq;Wk;Wv]ᵀ (norm weight folded into W) → RoPE + KV store → attention →
//   x += attended·Woᵀ → gate = silu(RMSNorm(x)·Wgᵀ)·(RMSNorm(x)·Wuᵀ) → x += gate·Wdᵀ
// then logits = RMSNorm(x_last)·W_headᵀ and the sampler, all in one submit per chunk of tokens; only the
// sampled id (4 bytes) or, for tests, the logits come back.
import { ContextOverflowError } from '../errors.ts';
import { type GpuContext, checkBufferSize } from '../gpu/context.ts';
import { CommandRecorder } from '../gpu/recorder.ts';
import { attention } from '../ops/attention.ts';
import { embedding } from '../ops/embedding.ts';
import { type GpuMatrix, linear } from '../ops/linear.ts';
import { ropeKv } from '../ops/rope-kv.ts';
import { sample } from '../ops/sample.ts';
import { type SamplingConfig, samplingConfig } from '../runtime/sampling.ts';
import { type LlamaSpec, ropeCosSinTable } from './config.ts';
import { GpuWeightUploader, type MatrixSpec, type PendingMatrix, destroyGpuMatrix, gpuMatrixBuffers } from './gpu-weights.ts';
import { checkLlamaCheckpoint, llamaTensorLayout } from './llama-weights.ts';
import type { WeightFormatOptions } from './quant.ts';
import type { SafetensorsCheckpoint } from './safetensors.ts';

export interface GpuLlamaOptions {
  /** KV cache length in tokens; defaults to the model's max_position_embeddings. */
  contextLength?: number;
  /** Most tokens run in one forward call; longer prompts are split. */
  chunkTokens?: number;
  /** Format of the weight matrices (default f32). */
  weights?: WeightFormatOptions;
  /** Format of the output head; defaults to `weights`. */
  lmHead?: WeightFormatOptions;
  /** Called after each chunk of weights with checkpoint bytes read so far and in all. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
}

const DEFAULT_CHUNK_TOKENS = 64;

interface LayerMatrices {
  qkv: GpuMatrix; //    [(heads + 2·kvHeads)·headDim][hidden], input norm folded in
  o: GpuMatrix; //      [hidden][heads·headDim]
  gateUp: GpuMatrix; // gate and up [ffn][hidden] pair, post-attention norm folded in
  down: GpuMatrix; //   [hidden][ffn]
}

interface Activations {
  tokenIds: GPUBuffer; // [chunk] u32
  x: GPUBuffer; //        [chunk][hidden], the residual stream
  qkv: GPUBuffer; //      [chunk][(heads + 2·kvHeads)·headDim]
  q: GPUBuffer; //        [chunk][heads·headDim], rotated
  attended: GPUBuffer; // [chunk][heads·headDim]
  gate: GPUBuffer; //     [chunk][ffn]
  scores: GPUBuffer; //   [chunk·heads][contextLength]
  logits: GPUBuffer; //   [vocab]
  seen: GPUBuffer; //     [ceil(vocab / 32)] u32 bits: tokens in the context (repetition penalty)
  nextId: GPUBuffer; //   [1] u32
}

function activationBytes(spec: LlamaSpec, chunkTokens: number, contextLength: number): Record<keyof Activations, number> {
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize } = spec;
  const c = chunkTokens;
  return {
    tokenIds: c * 4,
    x: c * h * 4,
    qkv: c * (numHeads + 2 * numKvHeads) * headDim * 4,
    q: c * numHeads * headDim * 4,
    attended: c * numHeads * headDim * 4,
    gate: c * f * 4,
    scores: c * numHeads * contextLength * 4,
    logits: vocabSize * 4,
    seen: Math.ceil(vocabSize / 32) * 4,
    nextId: 4,
  };
}

const kvCacheBytes = (spec: LlamaSpec, contextLength: number) => contextLength * spec.numKvHeads * spec.headDim * 4;

/** The matrices of the graph, as stacks of checkpoint tensors (norm weights are folded in at load). */
function matrixSpecs(spec: LlamaSpec): { embed: MatrixSpec; layers: Record<keyof LayerMatrices, MatrixSpec>[]; lmHead: MatrixSpec } {
  const layout = llamaTensorLayout(spec);
  return {
    embed: { label: 'embed', tensors: [layout.embed.name] },
    layers: layout.layers.map((l, i) => ({
      qkv: { label: `layers.${i}.qkv`, tensors: [l.wq.name, l.wk.name, l.wv.name] },
      o: { label: `layers.${i}.o`, tensors: [l.wo.name] },
      gateUp: { label: `layers.${i}.gateUp`, tensors: [l.wGate.name, l.wUp.name], gatedPair: true },
      down: { label: `layers.${i}.down`, tensors: [l.wDown.name] },
    })),
    lmHead: { label: 'lmHead', tensors: [layout.lmHead.name] },
  };
}

/** Every GPU buffer the model allocates (weights, RoPE table, K and V caches, activations), in bytes. */
export function gpuLlamaMemoryPlan(
  spec: LlamaSpec, contextLength: number, options: { chunkTokens?: number; weights?: WeightFormatOptions; lmHead?: WeightFormatOptions; bindingLimit?: number } = {},
): { buffers: { label: string; bytes: number }[]; totalBytes: number } {
  const format = options.weights ?? { format: 'f32' };
  const limit = options.bindingLimit ?? Infinity;
  const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize } = spec;
  const specs = matrixSpecs(spec);
  const layerShapes: Record<keyof LayerMatrices, number[][]> = {
    qkv: [[numHeads * headDim, h], [numKvHeads * headDim, h], [numKvHeads * headDim, h]],
    o: [[h, numHeads * headDim]],
    gateUp: [[f, h], [f, h]],
    down: [[h, f]],
  };
  const buffers = [
    ...gpuMatrixBuffers(specs.embed, [[vocabSize, h]], format, limit),
    ...specs.layers.flatMap((layer) => (Object.keys(layer) as (keyof LayerMatrices)[]).flatMap((key) => gpuMatrixBuffers(layer[key], layerShapes[key], format, limit))),
    ...gpuMatrixBuffers(specs.lmHead, [[vocabSize, h]], options.lmHead ?? format, limit),
    { label: 'rope.cosSin', bytes: contextLength * headDim * 4 },
    ...Array.from({ length: 2 * spec.numLayers }, (_, i) => ({ label: `${i % 2 ? 'v' : 'k'}Cache.${i >> 1}`, bytes: kvCacheBytes(spec, contextLength) })),
    ...Object.entries(activationBytes(spec, options.chunkTokens ?? DEFAULT_CHUNK_TOKENS, contextLength)).map(([label, bytes]) => ({ label, bytes })),
  ];
  return { buffers, totalBytes: buffers.reduce((sum, b) => sum + b.bytes, 0) };
}

export class GpuLlama {
  readonly spec: LlamaSpec;
  readonly contextLength: number;
  readonly chunkTokens: number;
  /** Positions filled in the KV cache. */
  length = 0;
  /** Dispatches recorded by the last forward call. */
  lastDispatchCount = 0;
  private readonly gpu: GpuContext;
  private readonly embed: GpuMatrix;
  private readonly layers: LayerMatrices[];
  private readonly lmHead: GpuMatrix;
  private readonly ropeTable: GPUBuffer; // [contextLength][headDim/2] (cos, sin)
  private readonly keyCache: GPUBuffer[]; //   per layer [contextLength][kvHeads·headDim]
  private readonly valueCache: GPUBuffer[];
  private readonly act: Activations;
  private readonly seenBits: Uint32Array<ArrayBuffer>;

  private constructor(gpu: GpuContext, spec: LlamaSpec, matrices: { embed: GpuMatrix; layers: LayerMatrices[]; lmHead: GpuMatrix }, contextLength: number, chunkTokens: number) {
    this.gpu = gpu;
    this.spec = spec;
    this.embed = matrices.embed;
    this.layers = matrices.layers;
    this.lmHead = matrices.lmHead;
    this.contextLength = contextLength;
    this.chunkTokens = chunkTokens;
    const kvBytes = kvCacheBytes(spec, contextLength);
    this.ropeTable = gpu.createBuffer('rope.cosSin', contextLength * spec.headDim * 4);
    this.keyCache = this.layers.map((_, l) => gpu.createBuffer(`kCache.${l}`, kvBytes));
    this.valueCache = this.layers.map((_, l) => gpu.createBuffer(`vCache.${l}`, kvBytes));
    const sizes = activationBytes(spec, chunkTokens, contextLength);
    this.act = Object.fromEntries(
      Object.entries(sizes).map(([name, bytes]) => [name, gpu.createBuffer(name, bytes)]),
    ) as unknown as Activations;
    this.seenBits = new Uint32Array(Math.ceil(spec.vocabSize / 32));
  }

  static async load(gpu: GpuContext, spec: LlamaSpec, checkpoint: SafetensorsCheckpoint, options: GpuLlamaOptions = {}): Promise<GpuLlama> {
    const contextLength = Math.min(options.contextLength ?? spec.maxPositions, spec.maxPositions);
    const chunkTokens = Math.min(options.chunkTokens ?? DEFAULT_CHUNK_TOKENS, contextLength);
    const weights = options.weights ?? { format: 'f32' };
    const lmHeadFormat = options.lmHead ?? weights;
    checkLlamaCheckpoint(spec, checkpoint);
    // Refuse what cannot fit before a single weight byte is read (or downloaded): first every buffer
    // against the binding limit (matrices over it are split into parts), then the whole allocation.
    const limit = Math.min(gpu.capabilities.maxStorageBufferBindingSize, gpu.capabilities.maxBufferSize);
    const plan = gpuLlamaMemoryPlan(spec, contextLength, { chunkTokens, weights, lmHead: lmHeadFormat, bindingLimit: limit });
    for (const { label, bytes } of plan.buffers) checkBufferSize(gpu.capabilities, label, bytes);

    const layout = llamaTensorLayout(spec);
    const specs = matrixSpecs(spec);
    // Bytes read: every matrix once (a tied head twice: it is converted again with the final norm folded in).
    const matrixTensors = [specs.embed, ...specs.layers.flatMap((l) => Object.values(l)), specs.lmHead].flatMap((m) => m.tensors);
    const totalBytes = matrixTensors.reduce((sum, name) => sum + checkpoint.get(name)!.byteLength, 0);
    let loadedBytes = 0;
    const uploader = new GpuWeightUploader(gpu, {
      signal: options.signal,
      onBytes: (bytes) => options.onProgress?.((loadedBytes += bytes), totalBytes),
    });
    const pending: PendingMatrix[] = [];
    let model: GpuLlama | undefined;
    const releaseAll = () => {
      for (const { matrix } of pending) destroyGpuMatrix(matrix);
      model?.destroyBuffers();
    };
    await gpu.allocateOrThrow(plan.totalBytes, () => {
      const allocate = (matrix: MatrixSpec, format: WeightFormatOptions) => {
        const result = uploader.allocate(matrix, checkpoint, format);
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
      model = new GpuLlama(gpu, spec, { embed, layers, lmHead }, contextLength, chunkTokens);
    }, releaseAll);

    try {
      gpu.device.queue.writeBuffer(model!.ropeTable, 0, ropeCosSinTable(spec, contextLength));
      // RMSNorm weights are folded into the matrix each norm feeds (qkv, gate/up, head).
      const norms = new Map<PendingMatrix, string>();
      layout.layers.forEach((names, i) => {
        norms.set(pending[1 + 4 * i]!, names.attnNorm.name);
        norms.set(pending[3 + 4 * i]!, names.ffnNorm.name);
      });
      norms.set(pending.at(-1)!, layout.finalNorm.name);
      for (const matrix of pending) {
        const normName = norms.get(matrix);
        const columnScale = normName ? await checkpoint.readFloat32(normName, options.signal) : undefined;
        await uploader.fill({ ...matrix, spec: { ...matrix.spec, columnScale } });
      }
      return model!;
    } catch (error) {
      releaseAll();
      throw error;
    } finally {
      uploader.finish();
    }
  }

  /** Forgets the cached positions (the next forward starts a new sequence). */
  reset(): void {
    this.length = 0;
    this.seenBits.fill(0);
    this.gpu.device.queue.writeBuffer(this.act.seen, 0, this.seenBits);
  }

  /** Runs `tokens` at the next positions; returns the next id, drawn with `sampling` (greedy by default). */
  async forwardSample(tokens: readonly number[], sampling: SamplingConfig = samplingConfig(), step = 0): Promise<number> {
    this.run(tokens, { sampling, step });
    return new Uint32Array(await this.gpu.readBack(this.act.nextId, 4))[0]!;
  }

  /** Runs `tokens`; returns the greedy next id after the last one. */
  forwardArgmax(tokens: readonly number[]): Promise<number> {
    return this.forwardSample(tokens);
  }

  /** Runs `tokens`; returns the logits after the last one (tests, and callers that sample themselves). */
  async forwardLogits(tokens: readonly number[]): Promise<Float32Array> {
    this.run(tokens, undefined);
    return new Float32Array(await this.gpu.readBack(this.act.logits, this.spec.vocabSize * 4));
  }

  private run(tokens: readonly number[], sampling: { sampling: SamplingConfig; step: number } | undefined): void {
    if (tokens.length === 0) throw new RangeError('forward needs at least one token');
    if (this.length + tokens.length > this.contextLength) throw new ContextOverflowError(this.length + tokens.length, this.contextLength);
    this.gpu.checkHealthy();
    this.markSeen(tokens);
    this.lastDispatchCount = 0;
    for (let start = 0; start < tokens.length; start += this.chunkTokens) {
      const chunk = tokens.slice(start, start + this.chunkTokens);
      this.gpu.device.queue.writeBuffer(this.act.tokenIds, 0, new Uint32Array(chunk));
      const recorder = new CommandRecorder(this.gpu);
      const isLast = start + this.chunkTokens >= tokens.length;
      this.recordChunk(recorder, chunk.length, isLast ? sampling ?? null : undefined);
      recorder.submit();
      this.lastDispatchCount += recorder.dispatchCount;
      this.length += chunk.length;
    }
  }

  /** Sets the repetition-penalty bits of tokens entering the context. */
  private markSeen(tokens: readonly number[]): void {
    for (const id of tokens) this.seenBits[id >> 5]! |= 1 << (id & 31);
    this.gpu.device.queue.writeBuffer(this.act.seen, 0, this.seenBits);
  }

  /** `finish`: undefined = no logits (a middle chunk); null = logits only; else also sample. */
  private recordChunk(recorder: CommandRecorder, tokens: number, finish: { sampling: SamplingConfig; step: number } | null | undefined): void {
    const { hiddenSize: h, numHeads, numKvHeads, headDim, vocabSize, rmsNormEps: eps } = this.spec;
    const { act } = this;
    const startPos = this.length;

    embedding(recorder, { tokenIds: act.tokenIds, table: this.embed, y: act.x, tokens });
    this.layers.forEach((layer, l) => {
      const kCache = this.keyCache[l]!;
      const vCache = this.valueCache[l]!;
      linear(recorder, { x: act.x, weights: layer.qkv, y: act.qkv, m: tokens, normalizeEps: eps });
      ropeKv(recorder, { qkv: act.qkv, cosSin: this.ropeTable, q: act.q, kCache, vCache, tokens, heads: numHeads, kvHeads: numKvHeads, headDim, startPos });
      attention(recorder, {
        q: act.q, kCache, vCache, scores: act.scores, out: act.attended,
        tokens, heads: numHeads, kvHeads: numKvHeads, headDim, startPos, scoreStride: this.contextLength,
      });
      linear(recorder, { x: act.attended, weights: layer.o, y: act.x, m: tokens, epilogue: 'accumulate' });
      linear(recorder, { x: act.x, weights: layer.gateUp, y: act.gate, m: tokens, normalizeEps: eps, epilogue: 'siluGate' });
      linear(recorder, { x: act.gate, weights: layer.down, y: act.x, m: tokens, epilogue: 'accumulate' });
    });
    if (finish === undefined) return;
    // Only the last position needs logits.
    linear(recorder, { x: act.x, weights: this.lmHead, y: act.logits, m: 1, xOffset: (tokens - 1) * h, normalizeEps: eps });
    if (finish) sample(recorder, { logits: act.logits, seen: act.seen, result: act.nextId, vocab: vocabSize, config: finish.sampling, step: finish.step });
  }

  destroy(): void {
    for (const matrix of [this.embed, this.lmHead, ...this.layers.flatMap((layer) => Object.values(layer))]) destroyGpuMatrix(matrix);
    this.destroyBuffers();
  }

  /** Everything but the weight matrices. */
  private destroyBuffers(): void {
    for (const buffer of [this.ropeTable, ...this.keyCache, ...this.valueCache, ...Object.values(this.act)]) buffer.destroy();
  }
}
