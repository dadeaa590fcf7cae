// The Llama graph on the GPU with f32 weights and a contiguous KV cache (the walking skeleton).
// One forward call = one command recorder = one submit; only the sampled id (4 bytes) or, for tests,
// the logits come back. Weights are uploaded one tensor at a time, so the model is never whole in JS.
import { ContextOverflowError } from '../errors.ts';
import { type GpuContext, checkBufferSize } from '../gpu/context.ts';
import { CommandRecorder } from '../gpu/recorder.ts';
import { argmax } from '../ops/argmax.ts';
import { attention } from '../ops/attention.ts';
import { embedding } from '../ops/embedding.ts';
import { matmul } from '../ops/matmul.ts';
import { rmsnorm } from '../ops/rmsnorm.ts';
import { rope } from '../ops/rope.ts';
import { siluMul } from '../ops/silu-mul.ts';
import { type LlamaSpec, ropeCosSinTable } from './config.ts';
import { type LlamaWeights, llamaTensors, mapLlamaWeights } from './llama-weights.ts';
import type { SafetensorsCheckpoint } from './safetensors.ts';

export interface GpuLlamaOptions {
  /** KV cache length in tokens; defaults to the model's max_position_embeddings. */
  contextLength?: number;
  /** Most tokens run in one forward call; longer prompts are split. */
  chunkTokens?: number;
  /** Called after each tensor with checkpoint bytes read so far and in all. */
  onProgress?: (loadedBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
}

const DEFAULT_CHUNK_TOKENS = 64;

interface Activations {
  tokenIds: GPUBuffer; // [chunk] u32
  x: GPUBuffer; //        [chunk][hidden], the residual stream
  xn: GPUBuffer; //       [chunk][hidden]
  q: GPUBuffer; //        [chunk][heads·headDim]
  attended: GPUBuffer; // [chunk][heads·headDim]
  gate: GPUBuffer; //     [chunk][ffn]
  up: GPUBuffer; //       [chunk][ffn]
  scores: GPUBuffer; //   [chunk·heads][contextLength]
  logits: GPUBuffer; //   [vocab]
  nextId: GPUBuffer; //   [1] u32
}

function activationBytes(spec: LlamaSpec, chunkTokens: number, contextLength: number): Record<keyof Activations, number> {
  const { hiddenSize: h, intermediateSize: f, numHeads, headDim, vocabSize } = spec;
  const c = chunkTokens;
  return {
    tokenIds: c * 4,
    x: c * h * 4,
    xn: c * h * 4,
    q: c * numHeads * headDim * 4,
    attended: c * numHeads * headDim * 4,
    gate: c * f * 4,
    up: c * f * 4,
    scores: c * numHeads * contextLength * 4,
    logits: vocabSize * 4,
    nextId: 4,
  };
}

const kvCacheBytes = (spec: LlamaSpec, contextLength: number) => contextLength * spec.numKvHeads * spec.headDim * 4;

/** Every buffer the f32 GPU model allocates (weights, RoPE table, per-layer K and V caches, activations), in bytes. */
export function gpuLlamaMemoryPlan(spec: LlamaSpec, contextLength: number, chunkTokens = DEFAULT_CHUNK_TOKENS): {
  buffers: { label: string; bytes: number }[];
  totalBytes: number;
} {
  const buffers = [
    ...llamaTensors(spec).map(({ name, shape }) => ({ label: name, bytes: shape.reduce((a, b) => a * b, 4) })),
    { label: 'rope.cosSin', bytes: contextLength * spec.headDim * 4 },
    ...Array.from({ length: 2 * spec.numLayers }, (_, i) => ({ label: `${i % 2 ? 'v' : 'k'}Cache.${i >> 1}`, bytes: kvCacheBytes(spec, contextLength) })),
    ...Object.entries(activationBytes(spec, chunkTokens, contextLength)).map(([label, bytes]) => ({ label, bytes })),
  ];
  return { buffers, totalBytes: buffers.reduce((sum, b) => sum + b.bytes, 0) };
}

export class GpuLlama {
  readonly spec: LlamaSpec;
  readonly contextLength: number;
  readonly chunkTokens: number;
  /** Positions filled in the KV cache. */
  length = 0;
  private readonly gpu: GpuContext;
  private readonly weights: LlamaWeights<GPUBuffer>;
  private readonly ropeTable: GPUBuffer; // [contextLength][headDim/2] (cos, sin)
  private readonly keyCache: GPUBuffer[]; //   per layer [contextLength][kvHeads·headDim]
  private readonly valueCache: GPUBuffer[];
  private readonly act: Activations;

  private constructor(gpu: GpuContext, spec: LlamaSpec, weights: LlamaWeights<GPUBuffer>, contextLength: number, chunkTokens: number) {
    this.gpu = gpu;
    this.spec = spec;
    this.weights = weights;
    this.contextLength = contextLength;
    this.chunkTokens = chunkTokens;
    const kvBytes = kvCacheBytes(spec, contextLength);
    this.ropeTable = gpu.upload('rope.cosSin', ropeCosSinTable(spec, contextLength));
    this.keyCache = weights.layers.map((_, l) => gpu.createBuffer(`kCache.${l}`, kvBytes));
    this.valueCache = weights.layers.map((_, l) => gpu.createBuffer(`vCache.${l}`, kvBytes));
    const sizes = activationBytes(spec, chunkTokens, contextLength);
    this.act = Object.fromEntries(
      Object.entries(sizes).map(([name, bytes]) => [name, gpu.createBuffer(name, bytes)]),
    ) as unknown as Activations;
  }

  static async load(gpu: GpuContext, spec: LlamaSpec, checkpoint: SafetensorsCheckpoint, options: GpuLlamaOptions = {}): Promise<GpuLlama> {
    const contextLength = Math.min(options.contextLength ?? spec.maxPositions, spec.maxPositions);
    const chunkTokens = Math.min(options.chunkTokens ?? DEFAULT_CHUNK_TOKENS, contextLength);
    // Refuse what cannot fit before a single weight byte is read (or downloaded).
    const plan = gpuLlamaMemoryPlan(spec, contextLength, chunkTokens);
    for (const { label, bytes } of plan.buffers) checkBufferSize(gpu.capabilities, label, bytes);
    const totalBytes = llamaTensors(spec).reduce((sum, { name }) => sum + (checkpoint.get(name)?.byteLength ?? 0), 0);
    let loadedBytes = 0;
    const uploaded: GPUBuffer[] = [];
    try {
      const weights = await mapLlamaWeights(spec, async (name) => {
        const buffer = gpu.upload(name, await checkpoint.readFloat32(name, options.signal));
        uploaded.push(buffer);
        loadedBytes += checkpoint.get(name)!.byteLength;
        options.onProgress?.(loadedBytes, totalBytes);
        return buffer;
      });
      return new GpuLlama(gpu, spec, weights, contextLength, chunkTokens);
    } catch (error) {
      for (const buffer of uploaded) buffer.destroy();
      throw error;
    }
  }

  /** Forgets the cached positions (the next forward starts a new sequence). */
  reset(): void {
    this.length = 0;
  }

  /** Runs `tokens` at the next positions; returns the greedy next id after the last one. */
  async forwardArgmax(tokens: readonly number[]): Promise<number> {
    this.run(tokens, true);
    return new Uint32Array(await this.gpu.readBack(this.act.nextId, 4))[0]!;
  }

  /** Runs `tokens`; returns the logits after the last one (tests and samplers that need them). */
  async forwardLogits(tokens: readonly number[]): Promise<Float32Array> {
    this.run(tokens, false);
    return new Float32Array(await this.gpu.readBack(this.act.logits, this.spec.vocabSize * 4));
  }

  private run(tokens: readonly number[], pickArgmax: boolean): void {
    if (tokens.length === 0) throw new RangeError('forward needs at least one token');
    if (this.length + tokens.length > this.contextLength) throw new ContextOverflowError(this.length + tokens.length, this.contextLength);
    this.gpu.checkHealthy();
    for (let start = 0; start < tokens.length; start += this.chunkTokens) {
      const chunk = tokens.slice(start, start + this.chunkTokens);
      this.gpu.device.queue.writeBuffer(this.act.tokenIds, 0, new Uint32Array(chunk));
      const recorder = new CommandRecorder(this.gpu);
      this.recordChunk(recorder, chunk.length, start + this.chunkTokens >= tokens.length, pickArgmax);
      recorder.submit();
      this.length += chunk.length;
    }
  }

  private recordChunk(recorder: CommandRecorder, tokens: number, isLast: boolean, pickArgmax: boolean): void {
    const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize, rmsNormEps: eps } = this.spec;
    const { act, weights } = this;
    const startPos = this.length;
    const qDim = numHeads * headDim;
    const kvDim = numKvHeads * headDim;

    embedding(recorder, { tokenIds: act.tokenIds, table: weights.embed, y: act.x, tokens, hidden: h });
    weights.layers.forEach((layer, l) => {
      const kCache = this.keyCache[l]!;
      const vCache = this.valueCache[l]!;
      const kvOffset = startPos * kvDim;
      rmsnorm(recorder, { x: act.x, weight: layer.attnNorm, y: act.xn, rows: tokens, dim: h, eps });
      matmul(recorder, { x: act.xn, w: layer.wq, y: act.q, m: tokens, n: qDim, k: h });
      // K and V are written straight into their cache slots.
      matmul(recorder, { x: act.xn, w: layer.wk, y: kCache, m: tokens, n: kvDim, k: h, yOffset: kvOffset });
      matmul(recorder, { x: act.xn, w: layer.wv, y: vCache, m: tokens, n: kvDim, k: h, yOffset: kvOffset });
      rope(recorder, { x: act.q, cosSin: this.ropeTable, tokens, heads: numHeads, headDim, startPos });
      rope(recorder, { x: kCache, cosSin: this.ropeTable, tokens, heads: numKvHeads, headDim, startPos, offset: kvOffset });
      attention(recorder, {
        q: act.q, kCache, vCache, scores: act.scores, out: act.attended,
        tokens, heads: numHeads, kvHeads: numKvHeads, headDim, startPos, scoreStride: this.contextLength,
      });
      matmul(recorder, { x: act.attended, w: layer.wo, y: act.x, m: tokens, n: h, k: qDim, accumulate: true });
      rmsnorm(recorder, { x: act.x, weight: layer.ffnNorm, y: act.xn, rows: tokens, dim: h, eps });
      matmul(recorder, { x: act.xn, w: layer.wGate, y: act.gate, m: tokens, n: f, k: h });
      matmul(recorder, { x: act.xn, w: layer.wUp, y: act.up, m: tokens, n: f, k: h });
      siluMul(recorder, { gate: act.gate, up: act.up, count: tokens * f });
      matmul(recorder, { x: act.gate, w: layer.wDown, y: act.x, m: tokens, n: h, k: f, accumulate: true });
    });
    if (!isLast) return;
    // Only the last position needs logits.
    rmsnorm(recorder, { x: act.x, weight: weights.finalNorm, y: act.xn, rows: 1, dim: h, eps, xOffset: (tokens - 1) * h });
    matmul(recorder, { x: act.xn, w: weights.lmHead, y: act.logits, m: 1, n: vocabSize, k: h });
    if (pickArgmax) argmax(recorder, { values: act.logits, result: act.nextId, count: vocabSize });
  }

  destroy(): void {
    const buffers = new Set<GPUBuffer>([
      this.weights.embed, this.weights.finalNorm, this.weights.lmHead,
      ...this.weights.layers.flatMap((layer) => Object.values(layer)),
      this.ropeTable, ...this.keyCache, ...this.valueCache, ...Object.values(this.act),
    ]);
    for (const buffer of buffers) buffer.destroy();
  }
}
