import { describe, expect, it } from 'vitest';
import { GpuLimitError, UnsupportedModelError } from '../../src/errors.ts';
import { checkBufferSize } from '../../src/gpu/context.ts';
import { checkKernelShapes, gpuLlamaMemoryPlan } from '../../src/model/llama-gpu.ts';
import { parseLlamaConfig, ropeInverseFrequencies } from '../../src/model/config.ts';

const base = {
  architectures: ['LlamaForCausalLM'], hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32,
  num_attention_heads: 32, num_key_value_heads: 32, vocab_size: 128256, max_position_embeddings: 4096,
  rms_norm_eps: 1e-5, eos_token_id: 2,
};

describe('Llama config', () => {
  it('reads a Tri-7B-shaped config (head_dim derived, MHA, untied)', () => {
    const spec = parseLlamaConfig({ ...base, rope_theta: 500000 }, { eos_token_id: [2, 0] });
    expect(spec).toMatchObject({ headDim: 128, numKvHeads: 32, ropeTheta: 500000, tieWordEmbeddings: false, ropeScaling: { type: 'default' } });
    expect(spec.eosTokenIds).toEqual([2, 0]);
  });

  it('accepts transformers 5.x rope_parameters and 4.x rope_scaling alike', () => {
    const llama3 = { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
    const v5 = parseLlamaConfig({ ...base, rope_parameters: { rope_theta: 500000, ...llama3 } });
    const v4 = parseLlamaConfig({ ...base, rope_theta: 500000, rope_scaling: llama3 });
    expect(v5.ropeScaling).toEqual(v4.ropeScaling);
    expect(v5.ropeTheta).toBe(500000);
  });

  it('applies llama3 scaling: high frequencies kept, low frequencies divided by the factor', () => {
    const spec = parseLlamaConfig({ ...base, rope_theta: 500000, rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } });
    const scaled = ropeInverseFrequencies(spec);
    const plain = ropeInverseFrequencies({ ...spec, ropeScaling: { type: 'default' } });
    expect(scaled[0]).toBe(plain[0]); // wavelength 2π < 8192/4: unchanged
    expect(scaled[63]! / plain[63]!).toBeCloseTo(1 / 8, 6); // wavelength ≫ 8192: divided by 8
    const middle = scaled.findIndex((v, i) => v !== plain[i] && Math.abs(v / plain[i]! - 1 / 8) > 1e-6);
    expect(middle).toBeGreaterThan(0); // a smooth band in between
  });

  it('applies linear scaling', () => {
    const spec = parseLlamaConfig({ ...base, rope_scaling: { type: 'linear', factor: 4 } });
    expect(ropeInverseFrequencies(spec)[1]).toBeCloseTo(ropeInverseFrequencies({ ...spec, ropeScaling: { type: 'default' } })[1]! / 4, 10);
  });

  it.each([
    [{ rope_scaling: { rope_type: 'yarn', factor: 4 } }, /RoPE scaling type "yarn" is not supported/],
    [{ architectures: ['MistralForCausalLM'] }, /architecture "MistralForCausalLM" is not supported/],
    [{ attention_bias: true }, /attention_bias/],
    [{ hidden_act: 'gelu' }, /hidden_act "gelu"/],
    [{ num_key_value_heads: 5 }, /32 heads cannot be grouped over 5 KV heads/],
    [{ hidden_size: 0 }, /"hidden_size" must be a positive integer/],
  ])('rejects %j clearly', (override, message) => {
    expect(() => parseLlamaConfig({ ...base, ...override })).toThrow(UnsupportedModelError);
    expect(() => parseLlamaConfig({ ...base, ...override })).toThrow(message);
  });
});

describe('GPU memory plan (checked before any weight is read)', () => {
  const capabilities = {
    shaderF16: false, subgroups: false, subgroupMinSize: 4, timestampQuery: false, adapterDescription: 'test', memoryBudgetBytes: undefined,
    maxStorageBufferBindingSize: 2 ** 30, maxBufferSize: 2 ** 30, maxComputeWorkgroupsPerDimension: 65535,
  };

  it('counts tri-tiny exactly: its 5,261,568 weights less the 2,304 folded norm weights, in f32 and q4', () => {
    const spec = parseLlamaConfig({ ...base, hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 8, vocab_size: 4096, max_position_embeddings: 1024 });
    const matrixBytes = (plan: { buffers: { label: string; bytes: number }[] }) => plan.buffers.filter((b) => /\[\d+\]$/.test(b.label)).reduce((sum, b) => sum + b.bytes, 0);
    const f32 = gpuLlamaMemoryPlan(spec, 1024, { chunkTokens: 64 });
    expect(matrixBytes(f32)).toBe((5_261_568 - 2_304) * 4);
    expect(f32.buffers.filter((b) => /^[kv]Cache\./.test(b.label))).toHaveLength(8);
    for (const { label, bytes } of f32.buffers) expect(() => checkBufferSize(capabilities, label, bytes)).not.toThrow();
    // q4 at G=32: 4 bits + one f16 scale per 32 weights; the FFN's K=688 pads to 704.
    const q4 = gpuLlamaMemoryPlan(spec, 1024, { weights: { format: 'q4' } });
    const q4Data = q4.buffers.filter((b) => /\]$/.test(b.label)).reduce((sum, b) => sum + b.bytes, 0);
    const downPadding = 4 * 256 * (704 - 688);
    expect(q4Data).toBe(((5_261_568 - 2_304 + downPadding) * 4.5) / 8);
  });

  it('splits Tri-7B\'s f32 lm_head (2 GiB) into parts under a 1 GiB binding limit; q4 keeps it whole (282 MiB)', () => {
    const spec = parseLlamaConfig(base);
    const f32 = gpuLlamaMemoryPlan(spec, 4096, { bindingLimit: 2 ** 30 });
    const parts = f32.buffers.filter((b) => b.label.startsWith('lmHead['));
    expect(parts.length).toBe(2);
    expect(parts.reduce((sum, b) => sum + b.bytes, 0)).toBe(128256 * 4096 * 4);
    for (const { label, bytes } of f32.buffers) expect(() => checkBufferSize(capabilities, label, bytes)).not.toThrow();
    const q4 = gpuLlamaMemoryPlan(spec, 4096, { weights: { format: 'q4' }, bindingLimit: 2 ** 30 });
    expect(q4.buffers.filter((b) => b.label.startsWith('lmHead')).map((b) => b.bytes)).toEqual([128256 * 4096 / 2, (128256 * 4096) / 16]);
    // Without splitting, a buffer over the limit is refused with a message that names it.
    expect(() => checkBufferSize(capabilities, 'lm_head.weight', 128256 * 4096 * 4)).toThrow(GpuLimitError);
    expect(() => checkBufferSize(capabilities, 'lm_head.weight', 128256 * 4096 * 4)).toThrow(/lm_head\.weight needs 2004\.0 MiB .* at most 1024\.0 MiB/);
  });

  it('plans Tri-7B in q4 with an f16 KV cache: 2 GiB of KV at 4096 positions (half of f32)', () => {
    const spec = parseLlamaConfig(base);
    const kvBytes = (kvCache: 'f32' | 'f16') => gpuLlamaMemoryPlan(spec, 4096, { weights: { format: 'q4' }, kvCache, bindingLimit: 2 ** 30 })
      .buffers.filter((b) => /^[kv]Cache\./.test(b.label)).reduce((sum, b) => sum + b.bytes, 0);
    expect(kvBytes('f16')).toBe(2 * 2 ** 30);
    expect(kvBytes('f32')).toBe(4 * 2 ** 30);
  });

  it('refuses shapes the kernels cannot take before anything is downloaded', () => {
    expect(() => checkKernelShapes(parseLlamaConfig(base))).not.toThrow();
    expect(() => checkKernelShapes(parseLlamaConfig({ ...base, head_dim: 256, num_attention_heads: 16, num_key_value_heads: 16 }))).toThrow(/head_dim = 256: the attention kernel takes at most 128/);
    expect(() => checkKernelShapes(parseLlamaConfig({ ...base, intermediate_size: 11009 }))).toThrow(UnsupportedModelError);
  });
});
