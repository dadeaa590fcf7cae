// The vision half on the GPU: pixel values → image features, which replace the `<image>` positions'
// embeddings in the language model's prefill. The tower's description is llava-config.ts and
// llava-weights.ts; this runs it with linear.wgsl and the vision kernels (layer-norm,
// bias-activation, vision-attention), one command buffer per image. Checked against the CPU
// reference (src/reference/llava-vision.ts) and HF's goldens. Matrices are f32 with an f32 language
// model, else f16 (CLIP-L: 0.6 GB instead of 1.2; bf16 checkpoints convert exactly: tri-tiny-llava's
// features within 6.7e-6 of HF); norms, biases and embeddings stay f32.
// Per encoder layer: LayerNorm, qkv, bias, attention, out-proj (accumulated into the residual), bias,
// LayerNorm, fc1, bias + activation, fc2 (accumulated), bias: 11 dispatches.
import type { GpuContext } from '../gpu/context.ts';
import { CommandRecorder } from '../gpu/recorder.ts';
import { biasActivation } from '../ops/bias-activation.ts';
import { layerNorm } from '../ops/layer-norm.ts';
import { type GpuMatrix, linear } from '../ops/linear.ts';
import { visionAttention } from '../ops/vision-attention.ts';
import { patchRows } from '../reference/llava-vision.ts';
import { destroyGpuMatrix, uploadPackedMatrix } from './gpu-weights.ts';
import type { VisionSpec } from './llava-config.ts';
import type { Affine, VisionWeights } from './llava-weights.ts';
import { type WeightFormatOptions, packWeights } from './quant.ts';

interface GpuAffine {
  matrix: GpuMatrix;
  bias: GPUBuffer;
}

interface GpuVisionLayer {
  layerNorm1: Affine<GPUBuffer>;
  qkv: GpuAffine; // q, k and v stacked by rows
  out: GpuAffine;
  layerNorm2: Affine<GPUBuffer>;
  fc1: GpuAffine;
  fc2: GpuAffine;
}

/** The matrices' format for a language model in `weights`: exact f32 beside f32, else f16. */
export const visionMatrixFormat = (weights: WeightFormatOptions): 'f32' | 'f16' => (weights.format === 'f32' ? 'f32' : 'f16');

/** GPU bytes of the vision half's weights and its activations, for the memory plan. */
export function visionGpuBytes(spec: VisionSpec, format: 'f32' | 'f16' = 'f32'): number {
  const { tower } = spec;
  const h = tower.hiddenSize;
  const positions = (tower.imageSize / tower.patchSize) ** 2 + 1;
  const patchWidth = 3 * tower.patchSize * tower.patchSize;
  const matrixBytes = format === 'f32' ? 4 : 2;
  const matrices = h * patchWidth + spec.featureLayers * (4 * h * h + 2 * h * tower.intermediateSize) + spec.textHiddenSize * (h + spec.textHiddenSize);
  const vectors = positions * h + 2 * h + spec.featureLayers * (4 * h + tower.intermediateSize + h + 4 * h) + 2 * spec.textHiddenSize;
  const activations = positions * (patchWidth + 5 * h + 3 * h + tower.intermediateSize) + 2 * spec.imageSeqLength * spec.textHiddenSize;
  return matrixBytes * matrices + 4 * (vectors + activations);
}

export class GpuVisionEncoder {
  readonly spec: VisionSpec;
  private readonly gpu: GpuContext;
  private readonly patchEmbedding: GpuMatrix;
  /** Per position: the position embedding, plus the class embedding at position 0 (added to the patch rows, whose row 0 is zero). */
  private readonly positionBias: GPUBuffer;
  private readonly preLayerNorm: Affine<GPUBuffer>;
  private readonly layers: GpuVisionLayer[];
  private readonly projector1: GpuAffine;
  private readonly projector2: GpuAffine;
  private readonly act: Record<'patches' | 'x' | 'normed' | 'qkv' | 'attended' | 'hidden' | 'projected' | 'features', GPUBuffer>;
  private readonly positions: number;

  private constructor(gpu: GpuContext, spec: VisionSpec, weights: VisionWeights<Float32Array<ArrayBuffer>>, format: 'f32' | 'f16') {
    this.gpu = gpu;
    this.spec = spec;
    const { tower } = spec;
    const h = tower.hiddenSize;
    const patchWidth = 3 * tower.patchSize * tower.patchSize;
    this.positions = (tower.imageSize / tower.patchSize) ** 2 + 1;
    const matrix = (label: string, values: Float32Array, n: number, k: number) => uploadPackedMatrix(gpu, label, packWeights(values, n, k, { format }));
    const affine = (label: string, a: Affine<Float32Array<ArrayBuffer>>, k: number): GpuAffine => ({ matrix: matrix(label, a.weight, a.bias.length, k), bias: gpu.upload(`${label}.bias`, a.bias) });
    const norm = (label: string, a: Affine<Float32Array<ArrayBuffer>>): Affine<GPUBuffer> => ({ weight: gpu.upload(`${label}.weight`, a.weight), bias: gpu.upload(`${label}.bias`, a.bias) });
    const stack = (...parts: Float32Array<ArrayBuffer>[]) => {
      const out = new Float32Array(parts.reduce((sum, p) => sum + p.length, 0));
      let at = 0;
      for (const part of parts) out.set(part, (at += part.length) - part.length);
      return out;
    };

    this.patchEmbedding = matrix('vision.patchEmbedding', weights.patchEmbedding, h, patchWidth);
    const positionBias = Float32Array.from(weights.positionEmbedding);
    for (let i = 0; i < h; i++) positionBias[i]! += weights.classEmbedding[i]!;
    this.positionBias = gpu.upload('vision.positionBias', positionBias);
    this.preLayerNorm = norm('vision.preLayerNorm', weights.preLayerNorm);
    this.layers = weights.layers.map((layer, i) => ({
      layerNorm1: norm(`vision.layers.${i}.layerNorm1`, layer.layerNorm1),
      qkv: affine(`vision.layers.${i}.qkv`, { weight: stack(layer.q.weight, layer.k.weight, layer.v.weight), bias: stack(layer.q.bias, layer.k.bias, layer.v.bias) }, h),
      out: affine(`vision.layers.${i}.out`, layer.out, h),
      layerNorm2: norm(`vision.layers.${i}.layerNorm2`, layer.layerNorm2),
      fc1: affine(`vision.layers.${i}.fc1`, layer.fc1, h),
      fc2: affine(`vision.layers.${i}.fc2`, layer.fc2, tower.intermediateSize),
    }));
    this.projector1 = affine('vision.projector1', weights.projector1, h);
    this.projector2 = affine('vision.projector2', weights.projector2, spec.textHiddenSize);
    const p = this.positions;
    const buffer = (label: string, floats: number) => gpu.createBuffer(`vision.${label}`, floats * 4);
    this.act = {
      patches: buffer('patches', p * patchWidth), x: buffer('x', p * h), normed: buffer('normed', p * h), qkv: buffer('qkv', p * 3 * h),
      attended: buffer('attended', p * h), hidden: buffer('hidden', p * tower.intermediateSize),
      projected: buffer('projected', spec.imageSeqLength * spec.textHiddenSize), features: buffer('features', spec.imageSeqLength * spec.textHiddenSize),
    };
  }

  /** Uploads the vision weights (already read and checked: readVisionWeights), matrices in `format`. */
  static create(gpu: GpuContext, spec: VisionSpec, weights: VisionWeights<Float32Array<ArrayBuffer>>, format: 'f32' | 'f16' = 'f32'): GpuVisionEncoder {
    return new GpuVisionEncoder(gpu, spec, weights, format);
  }

  /** Image features [imageSeqLength][textHiddenSize] for pixel values [3][S][S] (preprocessImage). */
  async encode(pixels: Float32Array): Promise<Float32Array> {
    const { spec, act, positions: p } = this;
    const { tower } = spec;
    const h = tower.hiddenSize;
    const patchWidth = 3 * tower.patchSize * tower.patchSize;
    // The patch rows (a reshuffle of the pixels, not arithmetic) are laid out on the CPU, after a zero row for CLS.
    const patches = new Float32Array(p * patchWidth);
    patches.set(patchRows(pixels, tower.imageSize, tower.patchSize), patchWidth);
    this.gpu.device.queue.writeBuffer(act.patches, 0, patches);

    const recorder = new CommandRecorder(this.gpu);
    linear(recorder, { x: act.patches, weights: this.patchEmbedding, y: act.normed, m: p });
    biasActivation(recorder, { bias: this.positionBias, y: act.normed, rows: p, width: h, biasPerRow: true });
    layerNorm(recorder, { x: act.normed, ...this.preLayerNorm, y: act.x, rows: p, width: h, eps: tower.layerNormEps });
    for (const layer of this.layers) {
      layerNorm(recorder, { x: act.x, ...layer.layerNorm1, y: act.normed, rows: p, width: h, eps: tower.layerNormEps });
      linear(recorder, { x: act.normed, weights: layer.qkv.matrix, y: act.qkv, m: p });
      biasActivation(recorder, { bias: layer.qkv.bias, y: act.qkv, rows: p, width: 3 * h });
      visionAttention(recorder, { qkv: act.qkv, out: act.attended, positions: p, heads: tower.numHeads, headDim: tower.headDim });
      linear(recorder, { x: act.attended, weights: layer.out.matrix, y: act.x, m: p, epilogue: 'accumulate' });
      biasActivation(recorder, { bias: layer.out.bias, y: act.x, rows: p, width: h });
      layerNorm(recorder, { x: act.x, ...layer.layerNorm2, y: act.normed, rows: p, width: h, eps: tower.layerNormEps });
      linear(recorder, { x: act.normed, weights: layer.fc1.matrix, y: act.hidden, m: p });
      biasActivation(recorder, { bias: layer.fc1.bias, y: act.hidden, rows: p, width: tower.intermediateSize, activation: tower.activation });
      linear(recorder, { x: act.hidden, weights: layer.fc2.matrix, y: act.x, m: p, epilogue: 'accumulate' });
      biasActivation(recorder, { bias: layer.fc2.bias, y: act.x, rows: p, width: h });
    }
    // Feature select: without CLS the projector reads from row 1.
    const rows = spec.imageSeqLength;
    const th = spec.textHiddenSize;
    linear(recorder, { x: act.x, xOffset: spec.dropCls ? h : 0, weights: this.projector1.matrix, y: act.projected, m: rows });
    biasActivation(recorder, { bias: this.projector1.bias, y: act.projected, rows, width: th, activation: spec.projectorActivation });
    linear(recorder, { x: act.projected, weights: this.projector2.matrix, y: act.features, m: rows });
    biasActivation(recorder, { bias: this.projector2.bias, y: act.features, rows, width: th });
    recorder.submit();
    return new Float32Array(await this.gpu.readBack(act.features, rows * th * 4));
  }

  destroy(): void {
    const affines = [...this.layers.flatMap((l) => [l.qkv, l.out, l.fc1, l.fc2]), this.projector1, this.projector2];
    for (const { matrix, bias } of affines) {
      destroyGpuMatrix(matrix);
      bias.destroy();
    }
    destroyGpuMatrix(this.patchEmbedding);
    const norms = [this.preLayerNorm, ...this.layers.flatMap((l) => [l.layerNorm1, l.layerNorm2])];
    for (const buffer of [this.positionBias, ...norms.flatMap((n) => [n.weight, n.bias]), ...Object.values(this.act)]) buffer.destroy();
  }
}
