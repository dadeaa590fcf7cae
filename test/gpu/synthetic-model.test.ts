// The synthetic model (src/model/synthetic.ts): weights made on the GPU from a seed. Deterministic (the
// same seed gives the same logits, another seed others), finite through every layer in each weight
// format, and planned like a real load: Tri-7B's shapes on a device that cannot hold them are refused
// with GpuOutOfMemoryError before anything is allocated.
import { beforeAll, describe, expect, it } from 'vitest';
import { ContextOverflowError, GpuOutOfMemoryError } from '../../src/errors.ts';
import type { GpuContext } from '../../src/gpu/context.ts';
import { GpuLlama, gpuLlamaMemoryPlan } from '../../src/model/llama-gpu.ts';
import { SyntheticWeights, syntheticSpec } from '../../src/model/synthetic.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

// A small Llama of Tri-7B's proportions (8 layers, GQA off, untied head) so the test runs in seconds.
const SMALL = { hidden_size: 256, intermediate_size: 688, num_hidden_layers: 8, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 64, vocab_size: 1000, max_position_embeddings: 512 };
const TOKENS = [5, 17, 400, 999, 3, 250];

async function logits(seed: number, format: 'f32' | 'f16' | 'q4'): Promise<Float32Array> {
  const model = await GpuLlama.load(gpu, syntheticSpec(SMALL), new SyntheticWeights(seed), { weights: { format }, contextLength: 128, linearSplitK: 1 });
  try {
    return await model.forwardLogits(TOKENS);
  } finally {
    model.destroy();
  }
}

describe('synthetic model', () => {
  for (const format of ['f32', 'f16', 'q4'] as const) {
    it(`${format}: finite logits, the same for the same seed, different for another`, async () => {
      const first = await logits(42, format);
      expect(first).toHaveLength(1000);
      expect(first.every(Number.isFinite)).toBe(true);
      expect(Math.max(...first) - Math.min(...first)).toBeGreaterThan(1e-3); // not all equal: the weights are not zero
      expect(await logits(42, format)).toEqual(first);
      expect(await logits(43, format)).not.toEqual(first);
    });
  }

  it('decodes at an assumed long position (benchmarks skip the prefill), and refuses positions past the context', async () => {
    const model = await GpuLlama.load(gpu, syntheticSpec(SMALL), new SyntheticWeights(1), { weights: { format: 'q4' }, contextLength: 128, linearSplitK: 1 });
    try {
      model.assumePositions(100);
      expect(model.length).toBe(100);
      const id = await model.forwardSample([7]);
      expect(id).toBeGreaterThanOrEqual(0);
      expect(id).toBeLessThan(1000);
      expect(model.length).toBe(101);
      expect(() => model.assumePositions(28)).toThrow(ContextOverflowError);
      expect(model.length).toBe(101);
    } finally {
      model.destroy();
    }
  });

  it('times its steps on the GPU with timestamp queries when asked (Dawn on SwiftShader has them): same ids, GPU time within the wall time', async () => {
    expect(gpu.capabilities.timestampQuery, 'this Dawn adapter should offer timestamp-query').toBe(true);
    const model = await GpuLlama.load(gpu, syntheticSpec(SMALL), new SyntheticWeights(1), { weights: { format: 'q4' }, contextLength: 128, linearSplitK: 1 });
    try {
      const untimed = await model.forwardSample(TOKENS);
      expect(model.lastGpuMs).toBeUndefined();
      model.reset();
      model.timeGpu = true;
      const start = performance.now();
      const timed = await model.forwardSample(TOKENS);
      const wallMs = performance.now() - start;
      expect(timed).toBe(untimed);
      expect(model.lastGpuMs).toBeGreaterThan(0);
      expect(model.lastGpuMs).toBeLessThanOrEqual(wallMs);
      const decodeStart = performance.now();
      await model.forwardSample([timed]);
      expect(model.lastGpuMs).toBeGreaterThan(0);
      expect(model.lastGpuMs).toBeLessThanOrEqual(performance.now() - decodeStart);
    } finally {
      model.destroy();
    }
  });

  it('plans Tri-7B q4 like the real model and refuses it on a device that cannot hold it, before allocating', async () => {
    const spec = syntheticSpec();
    expect([spec.numLayers, spec.hiddenSize, spec.intermediateSize, spec.numHeads, spec.numKvHeads, spec.vocabSize]).toEqual([32, 4096, 11008, 32, 32, 128256]);
    const plan = gpuLlamaMemoryPlan(spec, 4096, { weights: { format: 'q4' }, kvCache: 'f16' });
    expect(plan.totalBytes / 2 ** 30).toBeGreaterThan(5.5); // 3.9 GiB of q4 weights and a 2 GiB f16 KV cache
    const load = GpuLlama.load(gpu, spec, new SyntheticWeights(), { weights: { format: 'q4' }, kvCache: 'f16', contextLength: 4096, maxGpuBytes: 2 ** 30 });
    await expect(load).rejects.toBeInstanceOf(GpuOutOfMemoryError);
  });
});
