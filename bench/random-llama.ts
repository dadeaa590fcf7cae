// The mid-size benchmark model of issue 4: a random-weight Llama (hidden 1024, 8 layers, 16 heads, 16 KV
// heads, FFN 2816, vocab 4096, untied head: 111,159,296 parameters, bf16, 222 MB), written
// deterministically (seeded) so every run measures the same model. Big enough that memory bandwidth,
// not per-dispatch overhead, dominates decode. It borrows tri-tiny's tokenizer (same 4096 vocabulary).
// Written once to node_modules/.cache (never committed: it is regenerated bit for bit).
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, writeSync, writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const RANDOM_LLAMA_DIR = fileURLToPath(new URL('../node_modules/.cache/tri-webgpu/random-llama-111m/', import.meta.url));
const TRI_TINY = fileURLToPath(new URL('../public/models/tri-tiny/', import.meta.url));

const CONFIG = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu',
  hidden_size: 1024, intermediate_size: 2816, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 16,
  head_dim: 64, vocab_size: 4096, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0,
  tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2, torch_dtype: 'bfloat16',
};

function tensorList(): { name: string; shape: number[] }[] {
  const { hidden_size: h, intermediate_size: f, num_hidden_layers: layers, vocab_size: vocab } = CONFIG;
  const tensors = [{ name: 'model.embed_tokens.weight', shape: [vocab, h] }];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [h] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [h, h] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [h, h] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [h, h] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [h, h] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [h] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [f, h] },
      { name: `${p}.mlp.up_proj.weight`, shape: [f, h] },
      { name: `${p}.mlp.down_proj.weight`, shape: [h, f] },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [h] }, { name: 'lm_head.weight', shape: [vocab, h] });
  return tensors;
}

/** Writes the model folder if it is not there yet; returns its path. */
export function ensureRandomLlama(): string {
  if (existsSync(`${RANDOM_LLAMA_DIR}model.safetensors`)) return RANDOM_LLAMA_DIR;
  mkdirSync(RANDOM_LLAMA_DIR, { recursive: true });
  const tensors = tensorList();
  let offset = 0;
  const header: Record<string, unknown> = {};
  for (const { name, shape } of tensors) {
    const bytes = shape.reduce((a, b) => a * b, 2);
    header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const headerBytes = Buffer.from(JSON.stringify(header).padEnd(Math.ceil(JSON.stringify(header).length / 8) * 8, ' '));
  const temporary = `${RANDOM_LLAMA_DIR}model.safetensors.partial`;
  const file = openSync(temporary, 'w');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(headerBytes.length));
  writeSync(file, length);
  writeSync(file, headerBytes);
  let state = 0x2545f491; // xorshift32: fixed seed, so the weights are the same on every machine
  for (const { shape } of tensors) {
    const count = shape.reduce((a, b) => a * b, 1);
    const out = new Uint16Array(count);
    if (shape.length === 1) {
      out.fill(0x3f80); // RMSNorm weights: 1.0
    } else {
      const bound = 1 / Math.sqrt(shape[1]!); // keeps activations O(1) through the layers
      const f32 = new Float32Array(1);
      const bits = new Uint32Array(f32.buffer);
      for (let i = 0; i < count; i++) {
        state ^= state << 13; state >>>= 0;
        state ^= state >>> 17;
        state ^= state << 5; state >>>= 0;
        f32[0] = (state / 2 ** 32 * 2 - 1) * bound;
        out[i] = bits[0]! >>> 16;
      }
    }
    writeSync(file, new Uint8Array(out.buffer));
  }
  closeSync(file);
  writeFileSync(`${RANDOM_LLAMA_DIR}config.json`, JSON.stringify(CONFIG, null, 2));
  writeFileSync(`${RANDOM_LLAMA_DIR}generation_config.json`, JSON.stringify({ bos_token_id: 0, eos_token_id: 2 }, null, 2));
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(`${TRI_TINY}${name}`, `${RANDOM_LLAMA_DIR}${name}`);
  renameSync(temporary, `${RANDOM_LLAMA_DIR}model.safetensors`); // last: the weights' presence marks the folder complete
  return RANDOM_LLAMA_DIR;
}
