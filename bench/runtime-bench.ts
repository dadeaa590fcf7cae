// Runtime benchmarks shared by `npm run bench -- runtime` (Node) and the benchmark page (Chromium):
// pipelined decode against the unpipelined loop in the same run (decode tok/s with 1 and 4 sequences,
// prefill tok/s at 128 and 512 tokens, GPU idle share, host ms per step), prompt tokens saved by prefix
// sharing over a 5-turn chat, and decode speed as a fraction of the roofline (best copy GB/s ÷ bytes per token).
import type { TriEngine } from '../src/runtime/engine.ts';
import { gpuLlamaMemoryPlan } from '../src/model/llama-gpu.ts';
import type { LlamaSpec } from '../src/model/config.ts';
import type { WeightFormatOptions } from '../src/model/quant.ts';

const prompt = (seed: number, length: number) => ({ tokenIds: Array.from({ length }, (_, i) => 300 + ((seed * 131 + i * 7) % 3500)) });

/** One row of the tri-tiny decode table: weights, prefill tok/s (64-token prompt), decode tok/s, dispatches per token. */
export async function decodeRow(engine: TriEngine): Promise<string[]> {
  const measured = prompt(7, 64);
  // Warm-up (pipelines compile on first use) on other tokens, so the measured prompt is not in the KV cache.
  await engine.complete(prompt(8, 64), { maxNewTokens: 4 });
  const result = await engine.complete(measured, { maxNewTokens: 32 });
  return [engine.weights.format, (64 / result.timings.prefillSeconds).toFixed(0), result.timings.decodeTokensPerSecond.toFixed(1), String(engine.dispatchesPerDecodedToken)];
}

/** Total generated tokens per second with `concurrency` sequences decoding together (after a warm-up). */
export async function decodeThroughput(engine: TriEngine, concurrency: number, newTokens = 32): Promise<number> {
  await engine.complete(prompt(999, 16), { maxNewTokens: 2 });
  const start = performance.now();
  const results = await Promise.all(Array.from({ length: concurrency }, (_, s) => engine.complete(prompt(s, 16), { maxNewTokens: newTokens })));
  const tokens = results.reduce((sum, result) => sum + result.tokenIds.length, 0);
  return tokens / ((performance.now() - start) / 1000);
}

/** Prompt tokens per second of one long prefill (no cached pages). */
export async function prefillThroughput(engine: TriEngine, length = 256): Promise<number> {
  const result = await engine.complete(prompt(4242, length), { maxNewTokens: 1 });
  return length / result.timings.prefillSeconds;
}

/** A 5-turn chat where each prompt repeats the conversation: the share of prompt tokens taken from the cache. */
export async function chatPrefixSharing(engine: TriEngine): Promise<{ promptTokens: number; cachedTokens: number }> {
  const messages: { role: string; content: string }[] = [];
  let promptTokens = 0;
  let cachedTokens = 0;
  const questions = ['Tell me a story.', '한국어로 말해 주세요.', 'What happened next?', '왜요?', 'Thank you!'];
  for (const question of questions) {
    messages.push({ role: 'user', content: question });
    const result = await engine.complete(messages, { maxNewTokens: 24 });
    promptTokens += result.usage.promptTokens;
    cachedTokens += result.usage.cachedPromptTokens;
    messages.push({ role: 'assistant', content: result.text });
  }
  return { promptTokens, cachedTokens };
}

/**
 * Bytes one decode step reads at `position`: every matrix but the embedding (one row), and the K and V
 * so far (`kvValueBytes` each: 4 for an f32 cache, 2 for f16).
 */
export function bytesPerDecodedToken(spec: LlamaSpec, weights: WeightFormatOptions, position = 64, kvValueBytes = 4): number {
  const plan = gpuLlamaMemoryPlan(spec, 64, { weights, chunkTokens: 1, maxSequences: 1, kvPages: 4 });
  const matrices = plan.buffers.filter((b) => /\]$/.test(b.label) && !b.label.startsWith('embed'));
  const kvPerLayer = 2 * position * spec.numKvHeads * spec.headDim * kvValueBytes;
  return matrices.reduce((sum, b) => sum + b.bytes, 0) + spec.numLayers * kvPerLayer;
}

export type LoadEngine = (
  model: 'tri-tiny' | 'random-111m', weights: WeightFormatOptions, options?: { maxSequences?: number; stepsInFlight?: 1 | 2; tiledPrefill?: boolean; subgroups?: boolean },
) => Promise<TriEngine>;

/**
 * One engine of the before/after table: the loop before issue 15 (1 step in flight, row-quad prefill, no
 * subgroup kernels, every step's dispatches recorded anew), the default, or tiled prefill forced.
 */
type Variant = { stepsInFlight?: 1 | 2; tiledPrefill?: boolean; subgroups?: boolean; replay?: boolean };

/** What the before/after table compares for one engine: decode, prefill, the host's cost and the GPU's idle time. */
interface EngineFigures {
  decode1: number;
  decode4: number;
  prefill128: number;
  prefill512: number;
  dispatchesPerToken: number;
  /** Share of decode time the GPU ran nothing (timestamp queries); undefined without them. */
  gpuIdle: number | undefined;
}

/**
 * The figures of several engines, measured in turn for each figure (all engines' decode, then all their
 * prefills, ...) rather than engine after engine: this machine's speed drifts over minutes, and taking
 * each figure of the engines side by side keeps the drift out of their ratios.
 */
async function interleavedFigures(engines: readonly TriEngine[], newTokens: number): Promise<EngineFigures[]> {
  const each = async (measure: (engine: TriEngine) => Promise<number>) => {
    const values: number[] = [];
    for (const engine of engines) values.push(await measure(engine));
    return values;
  };
  const decode1 = await each((engine) => decodeThroughput(engine, 1, newTokens));
  const dispatchesPerToken = engines.map((engine) => engine.dispatchesPerDecodedToken);
  const decode4 = await each((engine) => decodeThroughput(engine, 4, newTokens));
  await each((engine) => prefillThroughput(engine, 64)); // compiles the prefill kernels
  const prefill128 = await each((engine) => prefillThroughput(engine, 128));
  const prefill512 = await each((engine) => prefillThroughput(engine, 512));
  const gpuIdle: (number | undefined)[] = [];
  for (const engine of engines) {
    const idle = engine.measureGpuIdle();
    await engine.complete(prompt(77, 16), { maxNewTokens: newTokens });
    gpuIdle.push(idle());
  }
  return engines.map((_, i) => ({
    decode1: decode1[i]!, decode4: decode4[i]!, prefill128: prefill128[i]!, prefill512: prefill512[i]!, dispatchesPerToken: dispatchesPerToken[i]!, gpuIdle: gpuIdle[i],
  }));
}

/**
 * Rows comparing the default engine (pipelined decode, replayed layers, kernels timed at load) with the
 * loop before (unpipelined, row quads, no subgroup kernels, every dispatch recorded), loaded the same way
 * in the same run and measured side by side (value = default, note = before and the ratio), and prefill
 * with the tiled GEMM forced (what a GPU would run; SwiftShader's timing may keep the row quads).
 */
async function pipelineRows(name: string, load: (variant: Variant) => Promise<TriEngine>, newTokens: number): Promise<[string, string, string][]> {
  const engines: TriEngine[] = [];
  let figures: EngineFigures[];
  try {
    for (const { replay, ...variant } of [{ stepsInFlight: 1, tiledPrefill: false, subgroups: false, replay: false }, {}, { tiledPrefill: true }] satisfies Variant[]) {
      const engine = await load(variant);
      engines.push(engine);
      if (replay !== undefined) engine.replayDecodeLayers = replay;
    }
    figures = await interleavedFigures(engines, newTokens);
  } finally {
    for (const engine of engines) engine.dispose();
  }
  const [before, after, tiled] = figures as [EngineFigures, EngineFigures, EngineFigures];
  const rate = (n: number) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
  const compare = (label: string, key: 'decode1' | 'decode4' | 'prefill128' | 'prefill512'): [string, string, string] => [
    `${name} ${label}`, `${rate(after[key])} tok/s`,
    `before ${rate(before[key])} tok/s: ×${(after[key] / before[key]).toFixed(2)}${key.startsWith('prefill') ? `; tiled GEMM forced ${rate(tiled[key])} tok/s (×${(tiled[key] / before[key]).toFixed(2)})` : ''}`,
  ];
  const idle = (share: number | undefined) => (share === undefined ? 'not measured (no timestamp-query)' : `${(100 * share).toFixed(1)}%`);
  return [
    compare('decode, 1 sequence', 'decode1'),
    compare('decode, 4 sequences (all together)', 'decode4'),
    compare('prefill, 128-token prompt', 'prefill128'),
    compare('prefill, 512-token prompt', 'prefill512'),
    [`${name} GPU idle between decode steps`, idle(after.gpuIdle), `unpipelined ${idle(before.gpuIdle)} (timestamp queries around each step: gaps ÷ span)`],
    [`${name} dispatches per decoded token`, String(after.dispatchesPerToken), `before ${before.dispatchesPerToken}; host ms per step: see the host-cost section (npm run bench -- host)`],
  ];
}

/** The runtime table: label, value, and a note (pipelined vs unpipelined, roofline fractions, dispatch counts). */
export async function runtimeRows(load: LoadEngine, copyGBs: number, withRandomModel = true): Promise<[string, string, string][]> {
  const rows = await pipelineRows('tri-tiny f32', (variant) => load('tri-tiny', { format: 'f32' }, { maxSequences: 16, ...variant }), 32);
  const tiny = await load('tri-tiny', { format: 'f32' }, { maxSequences: 16 });
  try {
    rows.push(['tri-tiny f32 decode, 16 sequences', `${(await decodeThroughput(tiny, 16)).toFixed(1)} tok/s`, 'all sequences together']);
    const { promptTokens, cachedTokens } = await chatPrefixSharing(tiny);
    rows.push(['tri-tiny 5-turn chat: prompt tokens from the KV cache', `${cachedTokens} of ${promptTokens}`, `${((100 * cachedTokens) / promptTokens).toFixed(0)}% of prefill saved`]);
  } finally {
    tiny.dispose();
  }
  if (!withRandomModel) {
    rows.push(['random 111M rows', 'not measured', 'give its folder with ?randomModel=URL (npm run bench -- runtime writes it); the synthetic Tri-7B below needs no download']);
    return rows;
  }
  rows.push(...(await pipelineRows('random 111M q4', (variant) => load('random-111m', { format: 'q4' }, { maxSequences: 4, ...variant }), 16)));
  for (const format of ['f32', 'q4'] as const) {
    const loadStart = performance.now();
    const engine = await load('random-111m', { format }, { maxSequences: 1 });
    const loadSeconds = (performance.now() - loadStart) / 1000;
    rows.push([`random 111M load, bf16 → ${format}`, `${loadSeconds.toFixed(2)} s`, `${(222.3 / loadSeconds).toFixed(0)} MB/s of checkpoint read, converted on the GPU`]);
    try {
      const tokensPerSecond = await decodeThroughput(engine, 1, 24);
      const bytes = bytesPerDecodedToken(engine.spec, { format });
      const roofline = (copyGBs * 1e9) / bytes;
      rows.push([
        `random 111M ${format} decode, 1 sequence`, `${tokensPerSecond.toFixed(2)} tok/s`,
        `${(tokensPerSecond / roofline).toFixed(2)} of roofline (${roofline.toFixed(2)} tok/s = ${copyGBs.toFixed(2)} GB/s ÷ ${(bytes / 1e6).toFixed(1)} MB/token); ${engine.dispatchesPerDecodedToken} dispatches/token`,
      ]);
    } finally {
      engine.dispose();
    }
  }
  return rows;
}
