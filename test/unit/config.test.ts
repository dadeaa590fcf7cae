import { describe, expect, it } from 'vitest';
import { UnsupportedModelError } from '../../src/errors.ts';
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
