// Plain CPU Llama forward over typed arrays: the yardstick every kernel and the GPU forward are
// tested against. It follows HF LlamaForCausalLM (rotate-half RoPE, GQA via shared KV heads, RMSNorm
// with the weight applied after normalising) and accumulates in float64 (JS numbers).
import { type LlamaSpec, ropeInverseFrequencies } from '../model/config.ts';
import type { LlamaWeights } from '../model/llama-weights.ts';

/** out[n] = Σ_k W[n][k]·x[k] for W row-major [rows][cols]. */
export function matVec(out: Float32Array, w: Float32Array, x: Float32Array, rows: number, cols: number): void {
  for (let n = 0; n < rows; n++) {
    let sum = 0;
    const base = n * cols;
    for (let k = 0; k < cols; k++) sum += w[base + k]! * x[k]!;
    out[n] = sum;
  }
}

export function rmsNorm(out: Float32Array, x: Float32Array, weight: Float32Array, eps: number): void {
  let sumSquares = 0;
  for (let i = 0; i < x.length; i++) sumSquares += x[i]! * x[i]!;
  // HF rounds the inverse RMS to float32 before scaling.
  const inverse = Math.fround(1 / Math.sqrt(sumSquares / x.length + eps));
  for (let i = 0; i < x.length; i++) out[i] = weight[i]! * Math.fround(x[i]! * inverse);
}

/** Rotate-half RoPE in place on `heads` vectors of `headDim` stored back to back. */
export function applyRope(x: Float32Array, heads: number, headDim: number, position: number, invFreq: Float32Array): void {
  const half = headDim / 2;
  for (let i = 0; i < half; i++) {
    const angle = Math.fround(position * invFreq[i]!);
    const cos = Math.fround(Math.cos(angle));
    const sin = Math.fround(Math.sin(angle));
    for (let h = 0; h < heads; h++) {
      const a = h * headDim + i;
      const x1 = x[a]!;
      const x2 = x[a + half]!;
      x[a] = x1 * cos - x2 * sin;
      x[a + half] = x2 * cos + x1 * sin;
    }
  }
}

export const silu = (v: number): number => v / (1 + Math.exp(-v));

export class ReferenceLlama {
  readonly spec: LlamaSpec;
  private readonly weights: LlamaWeights<Float32Array>;
  private readonly invFreq: Float32Array;
  // KV cache: [layer][position][kvHeads·headDim]
  private readonly keyCache: Float32Array[];
  private readonly valueCache: Float32Array[];
  /** Number of positions in the cache. */
  length = 0;

  constructor(spec: LlamaSpec, weights: LlamaWeights<Float32Array>, maxPositions = spec.maxPositions) {
    this.spec = spec;
    this.weights = weights;
    this.invFreq = ropeInverseFrequencies(spec);
    const kvDim = spec.numKvHeads * spec.headDim;
    this.keyCache = weights.layers.map(() => new Float32Array(maxPositions * kvDim));
    this.valueCache = weights.layers.map(() => new Float32Array(maxPositions * kvDim));
  }

  reset(): void {
    this.length = 0;
  }

  /** Runs one token at the next position; returns its logits [vocab]. */
  forward(token: number): Float32Array {
    const { hiddenSize: h, intermediateSize: f, numHeads, numKvHeads, headDim, vocabSize, rmsNormEps: eps } = this.spec;
    const position = this.length;
    const kvDim = numKvHeads * headDim;
    const groupSize = numHeads / numKvHeads;
    const w = this.weights;

    const x = w.embed.slice(token * h, (token + 1) * h);
    const xn = new Float32Array(h);
    const q = new Float32Array(numHeads * headDim);
    const attention = new Float32Array(numHeads * headDim);
    const projected = new Float32Array(h);
    const gate = new Float32Array(f);
    const up = new Float32Array(f);
    const scores = new Float64Array(position + 1);
    const scale = 1 / Math.sqrt(headDim);

    for (let l = 0; l < w.layers.length; l++) {
      const layer = w.layers[l]!;
      const keys = this.keyCache[l]!;
      const values = this.valueCache[l]!;
      rmsNorm(xn, x, layer.attnNorm, eps);
      matVec(q, layer.wq, xn, numHeads * headDim, h);
      const k = keys.subarray(position * kvDim, (position + 1) * kvDim);
      matVec(k, layer.wk, xn, kvDim, h);
      matVec(values.subarray(position * kvDim, (position + 1) * kvDim), layer.wv, xn, kvDim, h);
      applyRope(q, numHeads, headDim, position, this.invFreq);
      applyRope(k, numKvHeads, headDim, position, this.invFreq);

      for (let head = 0; head < numHeads; head++) {
        const kvOffset = Math.floor(head / groupSize) * headDim;
        let max = -Infinity;
        for (let t = 0; t <= position; t++) {
          let dot = 0;
          for (let d = 0; d < headDim; d++) dot += q[head * headDim + d]! * keys[t * kvDim + kvOffset + d]!;
          scores[t] = dot * scale;
          max = Math.max(max, scores[t]!);
        }
        let sum = 0;
        for (let t = 0; t <= position; t++) sum += scores[t] = Math.exp(scores[t]! - max);
        for (let d = 0; d < headDim; d++) {
          let acc = 0;
          for (let t = 0; t <= position; t++) acc += scores[t]! * values[t * kvDim + kvOffset + d]!;
          attention[head * headDim + d] = acc / sum;
        }
      }
      matVec(projected, layer.wo, attention, h, numHeads * headDim);
      for (let i = 0; i < h; i++) x[i]! += projected[i]!;

      rmsNorm(xn, x, layer.ffnNorm, eps);
      matVec(gate, layer.wGate, xn, f, h);
      matVec(up, layer.wUp, xn, f, h);
      for (let i = 0; i < f; i++) gate[i] = silu(gate[i]!) * up[i]!;
      matVec(projected, layer.wDown, gate, h, f);
      for (let i = 0; i < h; i++) x[i]! += projected[i]!;
    }
    rmsNorm(xn, x, w.finalNorm, eps);
    const logits = new Float32Array(vocabSize);
    matVec(logits, w.lmHead, xn, vocabSize, h);
    this.length++;
    return logits;
  }
}

/** Index of the largest value; the first one on ties, as torch.argmax. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

/** Greedy generation on the reference: prompt ids in, generated ids out (stop token included). */
export function referenceGreedy(model: ReferenceLlama, promptIds: readonly number[], maxNewTokens: number, stopIds: readonly number[] = model.spec.eosTokenIds): number[] {
  model.reset();
  let logits: Float32Array = new Float32Array(0);
  for (const id of promptIds) logits = model.forward(id);
  const generated: number[] = [];
  while (generated.length < maxNewTokens) {
    const next = argmax(logits);
    generated.push(next);
    if (stopIds.includes(next) || generated.length === maxNewTokens) break;
    logits = model.forward(next);
  }
  return generated;
}
