// Plain CPU forward of a llava vision half, the yardstick of the vision kernels: HF CLIPVisionModel
// (patch conv, CLS, learned positions, pre-LayerNorm, pre-norm encoder layers with bidirectional
// attention and quick_gelu/gelu MLP), the hidden states after `featureLayers` layers, CLS dropped or
// kept, then LlavaMultiModalProjector (linear, GELU, linear). Sums in float64 (JS numbers).
import type { VisionActivation, VisionSpec } from '../model/llava-config.ts';
import type { Affine, VisionWeights } from '../model/llava-weights.ts';

/** Rows of y = x·Wᵀ + b, for x [rows][k] and W [n][k] row-major. */
function affineRows(x: Float32Array, rows: number, k: number, { weight, bias }: Affine<Float32Array>): Float32Array {
  const n = bias.length;
  const y = new Float32Array(rows * n);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < n; o++) {
      let sum = bias[o]!;
      for (let i = 0; i < k; i++) sum += x[r * k + i]! * weight[o * k + i]!;
      y[r * n + o] = sum;
    }
  }
  return y;
}

export function layerNormRows(x: Float32Array, rows: number, width: number, { weight, bias }: Affine<Float32Array>, eps: number): Float32Array {
  const y = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let i = 0; i < width; i++) mean += x[r * width + i]!;
    mean /= width;
    let variance = 0;
    for (let i = 0; i < width; i++) variance += (x[r * width + i]! - mean) ** 2;
    const inverse = 1 / Math.sqrt(variance / width + eps);
    for (let i = 0; i < width; i++) y[r * width + i] = (x[r * width + i]! - mean) * inverse * weight[i]! + bias[i]!;
  }
  return y;
}

/** erf to within 1.2e-7 (Numerical Recipes' erfc Chebyshev fit); JS has no Math.erf. */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const erfc = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806 +
    t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - erfc : erfc - 1;
}

export function activate(x: number, activation: VisionActivation): number {
  return activation === 'quick_gelu' ? x / (1 + Math.exp(-1.702 * x)) : 0.5 * x * (1 + erf(x / Math.SQRT2));
}

/** pixels [3][S][S] → patch rows [P][3·p·p] in the conv kernel's (channel, y, x) order, patches row-major. */
export function patchRows(pixels: Float32Array, imageSize: number, patchSize: number): Float32Array {
  const side = imageSize / patchSize;
  const width = 3 * patchSize * patchSize;
  const rows = new Float32Array(side * side * width);
  for (let py = 0; py < side; py++) {
    for (let px = 0; px < side; px++) {
      const row = (py * side + px) * width;
      for (let c = 0; c < 3; c++) {
        for (let y = 0; y < patchSize; y++) {
          for (let x = 0; x < patchSize; x++) {
            rows[row + (c * patchSize + y) * patchSize + x] = pixels[(c * imageSize + py * patchSize + y) * imageSize + px * patchSize + x]!;
          }
        }
      }
    }
  }
  return rows;
}

/** Attention of every position to every position, per head, for q, k, v [positions][heads·headDim]. */
export function attendAllPositions(q: Float32Array, k: Float32Array, v: Float32Array, positions: number, numHeads: number, headDim: number): Float32Array {
  const h = numHeads * headDim;
  const scale = 1 / Math.sqrt(headDim);
  const attended = new Float32Array(positions * h);
  const scores = new Float64Array(positions);
  for (let head = 0; head < numHeads; head++) {
    for (let i = 0; i < positions; i++) {
      let max = -Infinity;
      for (let j = 0; j < positions; j++) {
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += q[i * h + head * headDim + d]! * k[j * h + head * headDim + d]!;
        scores[j] = dot * scale;
        max = Math.max(max, scores[j]!);
      }
      let sum = 0;
      for (let j = 0; j < positions; j++) sum += (scores[j] = Math.exp(scores[j]! - max));
      for (let d = 0; d < headDim; d++) {
        let value = 0;
        for (let j = 0; j < positions; j++) value += scores[j]! * v[j * h + head * headDim + d]!;
        attended[i * h + head * headDim + d] = value / sum;
      }
    }
  }
  return attended;
}

/** Image features [imageSeqLength][textHiddenSize] for pixel values [3][S][S]. */
export function encodeImageReference(spec: VisionSpec, weights: VisionWeights<Float32Array>, pixels: Float32Array): Float32Array {
  const { tower } = spec;
  const h = tower.hiddenSize;
  const patches = (tower.imageSize / tower.patchSize) ** 2;
  const positions = patches + 1;
  const patchWidth = 3 * tower.patchSize * tower.patchSize;
  const embedded = affineRows(patchRows(pixels, tower.imageSize, tower.patchSize), patches, patchWidth, { weight: weights.patchEmbedding, bias: new Float32Array(h) });
  let x: Float32Array = new Float32Array(positions * h);
  for (let t = 0; t < positions; t++) {
    for (let i = 0; i < h; i++) x[t * h + i] = (t === 0 ? weights.classEmbedding[i]! : embedded[(t - 1) * h + i]!) + weights.positionEmbedding[t * h + i]!;
  }
  x = layerNormRows(x, positions, h, weights.preLayerNorm, tower.layerNormEps);

  const { numHeads, headDim } = tower;
  for (const layer of weights.layers) {
    const normed = layerNormRows(x, positions, h, layer.layerNorm1, tower.layerNormEps);
    const q = affineRows(normed, positions, h, layer.q);
    const k = affineRows(normed, positions, h, layer.k);
    const v = affineRows(normed, positions, h, layer.v);
    const attended = attendAllPositions(q, k, v, positions, numHeads, headDim);
    const out = affineRows(attended, positions, h, layer.out);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + out[i]!;
    const hidden = affineRows(layerNormRows(x, positions, h, layer.layerNorm2, tower.layerNormEps), positions, h, layer.fc1);
    for (let i = 0; i < hidden.length; i++) hidden[i] = activate(hidden[i]!, tower.activation);
    const mlp = affineRows(hidden, positions, tower.intermediateSize, layer.fc2);
    for (let i = 0; i < x.length; i++) x[i] = x[i]! + mlp[i]!;
  }

  const selected = spec.dropCls ? x.subarray(h) : x;
  const rows = spec.dropCls ? patches : positions;
  const projected = affineRows(selected, rows, h, weights.projector1);
  for (let i = 0; i < projected.length; i++) projected[i] = activate(projected[i]!, spec.projectorActivation);
  return affineRows(projected, rows, spec.textHiddenSize, weights.projector2);
}
