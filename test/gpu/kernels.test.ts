// Kernels against the CPU reference on seeded random shapes, including awkward ones (K=172, GQA, one
// token, offsets into larger buffers); the linear, quantize and sample kernels have files of their own.
// Error metric per case: max-abs error normalised by the reference's largest magnitude.
import { beforeAll, describe, expect, it } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { type KvCacheFormat, attention, attentionPartialBytes, kvTokenBytes } from '../../src/ops/attention.ts';
import { embedding } from '../../src/ops/embedding.ts';
import { ropeKv } from '../../src/ops/rope-kv.ts';
import { type AttentionPolicy, type DocumentInput, attentionAllowed, documentAt, documentSpans } from '../../src/kv/documents.ts';
import { packBatchTables } from '../../src/ops/batch-tables.ts';
import { KV_PAGE_TOKENS } from '../../src/kv/paged-cache.ts';
import { ropeCosSinTable, ropeInverseFrequencies } from '../../src/model/config.ts';
import { uploadPackedMatrix } from '../../src/model/gpu-weights.ts';
import { floatToHalfBits, packWeights, unpackWeights } from '../../src/model/quant.ts';
import { halfToFloat } from '../../src/model/safetensors.ts';
import { applyRope } from '../../src/reference/llama.ts';
import { randomArray, seededRandom } from '../random.ts';
import { expectClose, runKernel } from './kernel-check.ts';
import { nodeGpuContext } from './node-gpu.ts';

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await nodeGpuContext();
});

const run = (record: (recorder: CommandRecorder) => void, output: GPUBuffer, count: number) => runKernel(gpu, record, output, count);

/** Page tables for sequences of the given lengths over a shuffled pool of pages (so page order ≠ position order). */
function pagedLayout(lengths: number[], random: () => number) {
  const pagesPerSlot = Math.max(...lengths.map((n) => Math.ceil(n / KV_PAGE_TOKENS)));
  const pool = Array.from({ length: lengths.length * pagesPerSlot }, (_, i) => i).sort(() => random() - 0.5);
  const tables = lengths.map((_, slot) => pool.slice(slot * pagesPerSlot, (slot + 1) * pagesPerSlot));
  const slotOf = (slot: number, position: number) => tables[slot]![Math.floor(position / KV_PAGE_TOKENS)]! * KV_PAGE_TOKENS + (position % KV_PAGE_TOKENS);
  return { pageCount: pool.length, tables, slotOf };
}

/** The int8 KV layout of rope-kv.wgsl on the CPU: per token and head, pack4x8snorm(x / max|x|) words, then max|x|. */
function quantizeKvInt8(values: Float32Array, headDim: number): Uint32Array<ArrayBuffer> {
  const heads = values.length / headDim;
  const words = new Uint32Array(heads * (headDim / 4 + 1));
  const scale = new Float32Array(1);
  for (let h = 0; h < heads; h++) {
    const head = values.subarray(h * headDim, (h + 1) * headDim);
    scale[0] = head.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    const inverse = scale[0] > 0 ? Math.fround(1 / scale[0]) : 0;
    const base = h * (headDim / 4 + 1);
    for (let i = 0; i < headDim / 4; i++) {
      let word = 0;
      for (let j = 0; j < 4; j++) {
        const q = Math.floor(0.5 + 127 * Math.min(1, Math.max(-1, Math.fround(head[4 * i + j]! * inverse))));
        word |= (q & 0xff) << (8 * j);
      }
      words[base + i] = word >>> 0;
    }
    words[base + headDim / 4] = new Uint32Array(scale.buffer)[0]!;
  }
  return words;
}

/** Back to values: unpack4x8snorm × scale, as paged-attention.wgsl reads them. */
function dequantizeKvInt8(words: Uint32Array, headDim: number): Float32Array<ArrayBuffer> {
  const stride = headDim / 4 + 1;
  const heads = words.length / stride;
  const out = new Float32Array(heads * headDim);
  for (let h = 0; h < heads; h++) {
    const scale = new Float32Array(new Uint32Array([words[h * stride + headDim / 4]!]).buffer)[0]!;
    for (let e = 0; e < headDim; e++) {
      const byte = (words[h * stride + (e >> 2)]! >>> (8 * (e & 3))) & 0xff;
      out[h * headDim + e] = Math.max((byte << 24 >> 24) / 127, -1) * scale;
    }
  }
  return out;
}

describe('rope-kv (rotate-half RoPE on q and k, K/V stored in their pages)', () => {
  const cases: { heads: number; kvHeads: number; headDim: number; rows: number[][]; kvFormat?: KvCacheFormat }[] = [
    { heads: 8, kvHeads: 4, headDim: 8, rows: [[0, 0]] }, //                    GQA, first token
    { heads: 3, kvHeads: 3, headDim: 32, rows: [[0, 300], [0, 301], [1, 15], [1, 16]] }, // two sequences, a page boundary
  ];
  const withFormats = [...cases, { ...cases[1]!, kvFormat: 'f16' as const }, { ...cases[1]!, kvFormat: 'int8' as const }, { ...cases[0]!, kvFormat: 'int8' as const }];
  for (const [i, { heads, kvHeads, headDim, rows, kvFormat = 'f32' }] of withFormats.entries()) {
    it(`heads=${heads}/${kvHeads} headDim=${headDim} rows=${JSON.stringify(rows)}, ${kvFormat} cache`, async () => {
      const random = seededRandom(300 + i);
      const ropeSpec = { headDim, ropeTheta: 10000, ropeScaling: { type: 'default' } } as const;
      const invFreq = ropeInverseFrequencies(ropeSpec);
      const qDim = heads * headDim;
      const kvDim = kvHeads * headDim;
      const rowDim = qDim + 2 * kvDim;
      const tokens = rows.length;
      const qkv = randomArray(random, tokens * rowDim);
      const lengths = [0, 1].map((slot) => Math.max(1, ...rows.filter(([s]) => s === slot).map(([, p]) => p! + 1)));
      const paged = pagedLayout(lengths, random);
      const q = gpu.createBuffer('q', tokens * qDim * 4);
      const cacheBytes = paged.pageCount * KV_PAGE_TOKENS * kvTokenBytes(kvHeads, headDim, kvFormat);
      const kCache = gpu.createBuffer('k', cacheBytes);
      const vCache = gpu.createBuffer('v', cacheBytes);
      const { data, ...layout } = packBatchTables(
        rows.map(([slot, position]) => [slot!, position!, 0] as const),
        lengths.map((kvLength, slot) => ({ pages: paged.tables[slot]!, kvLength, documents: [{ start: 0, end: kvLength, visibleMask: 0 }] })),
      );
      const recorder = new CommandRecorder(gpu);
      ropeKv(recorder, {
        qkv: gpu.upload('qkv', qkv), cosSin: gpu.upload('cosSin', ropeCosSinTable(ropeSpec, Math.max(...lengths))),
        tables: gpu.upload('tables', data), layout, q, kCache, vCache, tokens, heads, kvHeads, headDim, kvFormat,
      });
      recorder.submit();
      const actualQ = new Float32Array(await gpu.readBack(q, tokens * qDim * 4));
      const decode = (bytes: ArrayBuffer) => (kvFormat === 'int8' ? dequantizeKvInt8(new Uint32Array(bytes), headDim)
        : kvFormat === 'f16' ? Float32Array.from(new Uint16Array(bytes), halfToFloat) : new Float32Array(bytes));
      const keys = decode(await gpu.readBack(kCache, cacheBytes));
      const values = decode(await gpu.readBack(vCache, cacheBytes));
      // An f16 cache holds each value rounded to f16: relative error ≤ 2⁻¹¹; int8: half a step of max |x| / 127.
      const cacheTolerance = kvFormat === 'int8' ? 0.6 / 127 : kvFormat === 'f16' ? 1e-3 : 1e-5;
      for (const [t, [slot, position]] of rows.entries()) {
        const row = qkv.subarray(t * rowDim, (t + 1) * rowDim);
        const expectedQ = row.slice(0, qDim);
        const expectedK = row.slice(qDim, qDim + kvDim);
        applyRope(expectedQ, heads, headDim, position!, invFreq);
        applyRope(expectedK, kvHeads, headDim, position!, invFreq);
        const at = paged.slotOf(slot!, position!) * kvDim;
        expectClose('q', actualQ.subarray(t * qDim, (t + 1) * qDim), expectedQ);
        expectClose('k', keys.subarray(at, at + kvDim), expectedK, cacheTolerance);
        expectClose('v', values.subarray(at, at + kvDim), row.subarray(qDim + kvDim), kvFormat === 'f32' ? 0.5e-7 : cacheTolerance);
      }
    });
  }
});

describe('embedding gather from every weight format', () => {
  for (const options of [{ format: 'f32' }, { format: 'f16' }, { format: 'q4' }, { format: 'q4', groupSize: 64, withMin: true }] as const) {
    it(`${JSON.stringify(options)}: hidden=172, repeated ids, last row`, async () => {
      const random = seededRandom(500);
      const vocab = 50;
      const hidden = 172;
      const packed = packWeights(randomArray(random, vocab * hidden), vocab, hidden, options);
      const table = uploadPackedMatrix(gpu, 'table', packed);
      const ids = [0, 49, 7, 7];
      const y = gpu.createBuffer('y', ids.length * hidden * 4);
      const actual = await run((r) => embedding(r, { tokenIds: gpu.upload('ids', new Uint32Array(ids)), table, y, tokens: ids.length }), y, ids.length * hidden);
      const values = unpackWeights(packed);
      const expected = new Float32Array(ids.flatMap((id) => [...values.subarray(id * hidden, (id + 1) * hidden)]));
      expect(actual).toEqual(expected);
    });
  }
});

describe('paged attention with document masks vs the CPU reference', () => {
  type Case = { name: string; heads: number; kvHeads: number; headDim: number; sequences: { documents: DocumentInput[]; policy: AttentionPolicy; queries: number[] }[]; splits: number; kvFormat?: KvCacheFormat };
  const cases: Case[] = [
    { name: 'decode, GQA, causal, one split', heads: 8, kvHeads: 4, headDim: 8, splits: 1, sequences: [{ documents: [{ length: 37 }], policy: 'causal', queries: [36] }] },
    { name: 'decode, MHA, split-KV 4 and a second sequence', heads: 4, kvHeads: 4, headDim: 32, splits: 4, sequences: [
      { documents: [{ length: 70 }], policy: 'causal', queries: [69] }, { documents: [{ length: 5 }], policy: 'causal', queries: [4] }] },
    { name: 'split-KV 16 over 5 keys: empty splits', heads: 2, kvHeads: 1, headDim: 16, splits: 16, sequences: [{ documents: [{ length: 5 }], policy: 'causal', queries: [4] }] },
    { name: 'prefill, two packed prompts under "document"', heads: 2, kvHeads: 2, headDim: 8, splits: 1, sequences: [
      { documents: [{ length: 17 }, { length: 20 }], policy: 'document', queries: Array.from({ length: 37 }, (_, i) => i) }] },
    { name: 'prefill, xlda over en/ko/en/ko documents, ragged second sequence', heads: 4, kvHeads: 2, headDim: 8, splits: 1, sequences: [
      { documents: [{ length: 9, language: 'en' }, { length: 16, language: 'ko' }, { length: 7, language: 'en' }, { length: 3, language: 'ko' }], policy: 'xlda', queries: Array.from({ length: 35 }, (_, i) => i) },
      { documents: [{ length: 33 }], policy: 'causal', queries: [30, 31, 32] }] },
    { name: 'f16 cache, split-KV 4, xlda', heads: 4, kvHeads: 2, headDim: 16, splits: 4, kvFormat: 'f16', sequences: [
      { documents: [{ length: 30, language: 'en' }, { length: 40, language: 'ko' }], policy: 'xlda', queries: [69, 40, 10] }] },
    { name: 'int8 cache, split-KV 4, xlda', heads: 4, kvHeads: 2, headDim: 16, splits: 4, kvFormat: 'int8', sequences: [
      { documents: [{ length: 30, language: 'en' }, { length: 40, language: 'ko' }], policy: 'xlda', queries: [69, 40, 10] }] },
    { name: 'int8 cache, prefill, GQA, two sequences', heads: 8, kvHeads: 4, headDim: 32, splits: 1, kvFormat: 'int8', sequences: [
      { documents: [{ length: 21 }], policy: 'causal', queries: Array.from({ length: 21 }, (_, i) => i) }, { documents: [{ length: 3 }], policy: 'causal', queries: [2] }] },
    { name: 'groups and explicit visibility', heads: 2, kvHeads: 2, headDim: 8, splits: 1, sequences: [
      { documents: [{ length: 6 }, { length: 6 }, { length: 6 }], policy: { groups: [0, 1, 0] }, queries: Array.from({ length: 18 }, (_, i) => i) },
      { documents: [{ length: 4 }, { length: 20 }, { length: 4 }], policy: { visible: [[], [], [0]] }, queries: [0, 5, 23, 24, 27] }] },
  ];
  for (const [c, { name, heads, kvHeads, headDim, sequences, splits, kvFormat = 'f32' }] of cases.entries()) {
    it(name, async () => {
      const random = seededRandom(700 + c);
      const kvDim = kvHeads * headDim;
      const spans = sequences.map((sequence) => documentSpans(sequence.documents, sequence.policy));
      const lengths = spans.map((documents) => documents.at(-1)!.end);
      const paged = pagedLayout(lengths, random);
      // With an f16 or int8 cache the reference uses the rounded values the kernel reads.
      const toCache = (values: Float32Array<ArrayBuffer>) => (kvFormat === 'int8' ? dequantizeKvInt8(quantizeKvInt8(values, headDim), headDim)
        : kvFormat === 'f16' ? values.map((v) => halfToFloat(floatToHalfBits(v))) : values);
      const upload = (label: string, values: Float32Array<ArrayBuffer>) => gpu.upload(label, kvFormat === 'int8' ? quantizeKvInt8(values, headDim)
        : kvFormat === 'f16' ? Uint16Array.from(values, floatToHalfBits) : values);
      const keys = toCache(randomArray(random, paged.pageCount * KV_PAGE_TOKENS * kvDim, 2));
      const values = toCache(randomArray(random, keys.length));
      const rows = sequences.flatMap((sequence, slot) => sequence.queries.map((position) => [slot, position, documentAt(spans[slot]!, position)] as const));
      const q = randomArray(random, rows.length * heads * headDim, 2);
      const { data, ...layout } = packBatchTables(rows, spans.map((documents, slot) => ({ pages: paged.tables[slot]!, kvLength: lengths[slot]!, documents })));
      const out = gpu.createBuffer('out', q.byteLength);
      const actual = await run((r) => attention(r, {
        q: gpu.upload('q', q), tables: gpu.upload('tables', data), layout,
        kCache: upload('k', keys), vCache: upload('v', values), kvFormat,
        partials: gpu.createBuffer('partials', attentionPartialBytes(rows.length, heads, headDim, splits)), out,
        rowCount: rows.length, heads, kvHeads, headDim, splits,
      }), out, q.length);

      const expected = new Float32Array(q.length);
      rows.forEach(([slot, position], r) => {
        for (let h = 0; h < heads; h++) {
          const kvBase = Math.floor(h / (heads / kvHeads)) * headDim;
          const qBase = (r * heads + h) * headDim;
          const keysSeen = Array.from({ length: position! + 1 }, (_, j) => j).filter((j) => attentionAllowed(spans[slot!]!, position!, j));
          const scores = keysSeen.map((j) => {
            const at = paged.slotOf(slot!, j) * kvDim + kvBase;
            let dot = 0;
            for (let d = 0; d < headDim; d++) dot += q[qBase + d]! * keys[at + d]!;
            return dot / Math.sqrt(headDim);
          });
          const max = Math.max(...scores);
          const weights = scores.map((s) => Math.exp(s - max));
          const sum = weights.reduce((a, b) => a + b, 0);
          for (let d = 0; d < headDim; d++) {
            expected[qBase + d] = weights.reduce((acc, w, i) => acc + w * values[paged.slotOf(slot!, keysSeen[i]!) * kvDim + kvBase + d]!, 0) / sum;
          }
        }
      });
      expectClose('attention', actual, expected);
    });
  }
});
