// The mid-size benchmark model of issue 4: a random-weight Llama (hidden 1024, 8 layers, 16 heads, 16 KV
// heads, FFN 2816, vocab 4096, untied head: 111,159,296 parameters, bf16, 222 MB), written
// deterministically (seeded) so every run measures the same model. Big enough that memory bandwidth,
// not per-dispatch overhead, dominates decode. It borrows tri-tiny's tokenizer (same 4096 vocabulary).
// Written once to node_modules/.cache (never committed: it is regenerated bit for bit). The same writer
// makes the Tri-7B-shaped checkpoint of `npm run bench -- tri7b` (TRI_7B_RANDOM).
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, writeSync, writeFileSync, renameSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CACHE_DIR = fileURLToPath(new URL('../node_modules/.cache/tri-webgpu/', import.meta.url));
export const RANDOM_LLAMA_DIR = `${CACHE_DIR}random-llama-111m/`;
const TRI_TINY = fileURLToPath(new URL('../public/models/tri-tiny/', import.meta.url));

type LlamaConfig = {
  hidden_size: number; intermediate_size: number; num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number;
  head_dim: number; vocab_size: number; max_position_embeddings: number;
} & Record<string, unknown>;

const CONFIG: LlamaConfig = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_act: 'silu',
  hidden_size: 1024, intermediate_size: 2816, num_hidden_layers: 8, num_attention_heads: 16, num_key_value_heads: 16,
  head_dim: 64, vocab_size: 4096, max_position_embeddings: 2048, rms_norm_eps: 1e-5, rope_theta: 10000.0,
  tie_word_embeddings: false, bos_token_id: 0, eos_token_id: 2, torch_dtype: 'bfloat16',
};

/**
 * Tri-7B's exact shapes (32 layers, hidden 4096, FFN 11008, 32 heads and 32 KV heads, vocab 128,256,
 * untied head): 7.5 B random bf16 weights, about 15 GB in 4 shards. Token ids only: it keeps tri-tiny's
 * tokenizer, whose ids are a subset of the vocabulary.
 */
export const TRI_7B_RANDOM = {
  directory: `${CACHE_DIR}tri-7b-random/`,
  config: { ...CONFIG, hidden_size: 4096, intermediate_size: 11008, num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, head_dim: 128, vocab_size: 128256, max_position_embeddings: 32768, rope_theta: 500000.0 },
  shards: 4,
};
const RANDOM_111M = { directory: RANDOM_LLAMA_DIR, config: CONFIG, shards: 1 };

function tensorList(config: LlamaConfig): { name: string; shape: number[] }[] {
  const { hidden_size: h, intermediate_size: f, num_hidden_layers: layers, vocab_size: vocab, num_attention_heads: heads, num_key_value_heads: kvHeads, head_dim: d } = config;
  const tensors = [{ name: 'model.embed_tokens.weight', shape: [vocab, h] }];
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}`;
    tensors.push(
      { name: `${p}.input_layernorm.weight`, shape: [h] },
      { name: `${p}.self_attn.q_proj.weight`, shape: [heads * d, h] },
      { name: `${p}.self_attn.k_proj.weight`, shape: [kvHeads * d, h] },
      { name: `${p}.self_attn.v_proj.weight`, shape: [kvHeads * d, h] },
      { name: `${p}.self_attn.o_proj.weight`, shape: [h, heads * d] },
      { name: `${p}.post_attention_layernorm.weight`, shape: [h] },
      { name: `${p}.mlp.gate_proj.weight`, shape: [f, h] },
      { name: `${p}.mlp.up_proj.weight`, shape: [f, h] },
      { name: `${p}.mlp.down_proj.weight`, shape: [h, f] },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [h] }, { name: 'lm_head.weight', shape: [vocab, h] });
  return tensors;
}

/**
 * Writes the model folder if it is not there yet (one shard: model.safetensors; more: an index), and
 * returns its path. The weights stream out row block by row block from one seeded xorshift32 sequence,
 * so memory stays small and every machine writes the same bytes.
 */
export function ensureRandomLlama(model: { directory: string; config: LlamaConfig; shards: number } = RANDOM_111M): string {
  const { directory, config, shards } = model;
  const shardName = (i: number) => (shards === 1 ? 'model.safetensors' : `model-${String(i + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`);
  const marker = shards === 1 ? shardName(0) : 'model.safetensors.index.json';
  if (existsSync(`${directory}${marker}`)) return directory;
  mkdirSync(directory, { recursive: true });
  const tensors = tensorList(config);
  const totalBytes = tensors.reduce((sum, { shape }) => sum + shape.reduce((a, b) => a * b, 2), 0);
  // Tensors in order, a new shard once the current one holds its share of the bytes.
  const groups: { name: string; shape: number[] }[][] = Array.from({ length: shards }, () => []);
  let written = 0;
  for (const tensor of tensors) {
    const shard = Math.min(shards - 1, Math.floor((written / totalBytes) * shards));
    groups[shard]!.push(tensor);
    written += tensor.shape.reduce((a, b) => a * b, 2);
  }
  writeFileSync(`${directory}config.json`, JSON.stringify(config, null, 2));
  writeFileSync(`${directory}generation_config.json`, JSON.stringify({ bos_token_id: 0, eos_token_id: 2 }, null, 2));
  for (const name of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(`${TRI_TINY}${name}`, `${directory}${name}`);
  let state = 0x2545f491; // xorshift32: fixed seed, so the weights are the same on every machine
  const f32 = new Float32Array(1);
  const bits = new Uint32Array(f32.buffer);
  const weightMap: Record<string, string> = {};
  groups.forEach((group, index) => {
    let offset = 0;
    const header: Record<string, unknown> = {};
    for (const { name, shape } of group) {
      const bytes = shape.reduce((a, b) => a * b, 2);
      header[name] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
      weightMap[name] = shardName(index);
      offset += bytes;
    }
    const json = JSON.stringify(header);
    const headerBytes = Buffer.from(json.padEnd(Math.ceil(json.length / 8) * 8, ' '));
    const temporary = `${directory}${shardName(index)}.partial`;
    const file = openSync(temporary, 'w');
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(headerBytes.length));
    writeSync(file, length);
    writeSync(file, headerBytes);
    for (const { shape } of group) {
      const count = shape.reduce((a, b) => a * b, 1);
      if (shape.length === 1) {
        writeSync(file, new Uint8Array(new Uint16Array(count).fill(0x3f80).buffer)); // RMSNorm weights: 1.0
        continue;
      }
      const bound = 1 / Math.sqrt(shape[1]!); // keeps activations O(1) through the layers
      const block = new Uint16Array(Math.min(count, 1 << 24));
      for (let done = 0; done < count; done += block.length) {
        const n = Math.min(block.length, count - done);
        for (let i = 0; i < n; i++) {
          state ^= state << 13; state >>>= 0;
          state ^= state >>> 17;
          state ^= state << 5; state >>>= 0;
          f32[0] = (state / 2 ** 32 * 2 - 1) * bound;
          block[i] = bits[0]! >>> 16;
        }
        writeSync(file, new Uint8Array(block.buffer, 0, n * 2));
      }
    }
    closeSync(file);
    renameSync(temporary, `${directory}${shardName(index)}`);
  });
  // Last: the index (or the single shard, renamed last above) marks the folder complete.
  if (shards > 1) writeFileSync(`${directory}model.safetensors.index.json`, JSON.stringify({ metadata: { total_size: totalBytes }, weight_map: weightMap }));
  return directory;
}
