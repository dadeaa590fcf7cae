// Sampling settings, their validation, and a plain CPU sampler that mirrors kernels/sample.wgsl step
// by step (same order of operations, thresholds and RNG): the reference the GPU sampler is tested against.
import { InvalidRequestError } from '../errors.ts';

export interface SamplingOptions {
  /** 0 = greedy (the default). */
  temperature?: number;
  /** Keep the k most likely tokens; 0 = off. */
  topK?: number;
  /** Keep the smallest top set whose probability reaches topP; 1 = off. */
  topP?: number;
  /** Drop tokens less likely than minP × the most likely; 0 = off. */
  minP?: number;
  /** Hugging Face's repetition penalty over tokens in the context; 1 = off. */
  repetitionPenalty?: number;
  /** OpenAI's frequency penalty (−2..2): the logit drops by this once per time the token was generated; 0 = off. */
  frequencyPenalty?: number;
  /** OpenAI's presence penalty (−2..2): the logit drops by this if the token was generated at all; 0 = off. */
  presencePenalty?: number;
  /** RNG seed: the same seed, prompt and settings give the same text. */
  seed?: number;
}

export type SamplingConfig = Required<SamplingOptions>;

/**
 * The sampling a model's generation_config.json asks for, read as Hugging Face transformers reads it:
 * `do_sample: false` (or absent) is greedy; with `do_sample: true`, temperature 1, top-k 50 and top-p 1
 * unless set. Values the sampler would refuse are left out, so defaults never make a request invalid.
 */
export function generationDefaults(generationConfig: Record<string, unknown>): SamplingOptions {
  if (generationConfig.do_sample !== true) return { temperature: 0 };
  const number = (value: unknown, ok: (n: number) => boolean) => (typeof value === 'number' && ok(value) ? value : undefined);
  const defaults: SamplingOptions = {
    temperature: number(generationConfig.temperature ?? 1, (n) => n >= 0),
    topK: number(generationConfig.top_k ?? 50, (n) => Number.isInteger(n) && n >= 0 && n < 2 ** 31),
    topP: number(generationConfig.top_p ?? 1, (n) => n > 0 && n <= 1),
    minP: number(generationConfig.min_p ?? 0, (n) => n >= 0 && n < 1),
    repetitionPenalty: number(generationConfig.repetition_penalty ?? 1, (n) => n > 0),
  };
  return Object.fromEntries(Object.entries(defaults).filter(([, value]) => value !== undefined));
}

/** Fills defaults and refuses values that would make the sampler meaningless. */
export function samplingConfig(options: SamplingOptions | null = {}): SamplingConfig {
  options ??= {};
  const config: SamplingConfig = {
    temperature: options.temperature ?? 0,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
    minP: options.minP ?? 0,
    repetitionPenalty: options.repetitionPenalty ?? 1,
    frequencyPenalty: options.frequencyPenalty ?? 0,
    presencePenalty: options.presencePenalty ?? 0,
    seed: options.seed ?? 0,
  };
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new InvalidRequestError(message);
  };
  check(Number.isFinite(config.temperature) && config.temperature >= 0, `temperature must be ≥ 0 (got ${config.temperature})`);
  // topK goes to the GPU as a u32: larger values would wrap (2^32 + 1 → 1); any value ≥ the vocabulary is off.
  check(Number.isInteger(config.topK) && config.topK >= 0 && config.topK < 2 ** 31, `topK must be a whole number in [0, 2^31) (got ${config.topK})`);
  check(config.topP > 0 && config.topP <= 1, `topP must be in (0, 1] (got ${config.topP})`);
  check(config.minP >= 0 && config.minP < 1, `minP must be in [0, 1) (got ${config.minP})`);
  check(Number.isFinite(config.repetitionPenalty) && config.repetitionPenalty > 0, `repetitionPenalty must be > 0 (got ${config.repetitionPenalty})`);
  check(Number.isFinite(config.frequencyPenalty) && Math.abs(config.frequencyPenalty) <= 2, `frequencyPenalty must be in [-2, 2] (got ${config.frequencyPenalty})`);
  check(Number.isFinite(config.presencePenalty) && Math.abs(config.presencePenalty) <= 2, `presencePenalty must be in [-2, 2] (got ${config.presencePenalty})`);
  check(Number.isInteger(config.seed) && config.seed >= 0 && config.seed < 2 ** 32, `seed must be a 32-bit unsigned integer (got ${config.seed})`);
  return config;
}

export function pcgHash(input: number): number {
  const state = (Math.imul(input >>> 0, 747796405) + 2891336453) >>> 0;
  const word = Math.imul(((state >>> ((state >>> 28) + 4)) ^ state) >>> 0, 277803737) >>> 0;
  return ((word >>> 22) ^ word) >>> 0;
}

/** The draw in [0, 1) for (seed, step), exactly as the GPU computes it. */
export function samplingUniform(seed: number, step: number): number {
  return (pcgHash((seed ^ pcgHash(step)) >>> 0) >>> 8) * 2 ** -24;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
function key(value: number): number {
  f32[0] = value;
  const bits = u32[0]!;
  return (bits & 0x80000000 ? ~bits : bits | 0x80000000) >>> 0;
}

/** Whether the frequency/presence penalties are on (then the sampler reads the generated-token counts). */
export function usesTokenCounts(config: SamplingConfig): boolean {
  return config.frequencyPenalty !== 0 || config.presencePenalty !== 0;
}

/**
 * The CPU reference of kernels/sample.wgsl: the same thresholds and draw, in f64. `generated` counts the
 * completion's tokens so far (frequency/presence penalties, applied after the repetition penalty and
 * before temperature, in vLLM's and llama.cpp's order).
 */
export function referenceSample(logits: ArrayLike<number>, config: SamplingConfig, seen: ReadonlySet<number>, step: number, generated: ReadonlyMap<number, number> = new Map()): number {
  const vocab = logits.length;
  const penalty = Math.fround(config.repetitionPenalty);
  const frequency = Math.fround(config.frequencyPenalty);
  const presence = Math.fround(config.presencePenalty);
  const temperature = Math.fround(config.temperature);
  const adjusted = Array.from({ length: vocab }, (_, i) => {
    let value = Math.fround(logits[i]!);
    if (penalty !== 1 && seen.has(i)) value = Math.fround(value > 0 ? value / penalty : value * penalty);
    const count = generated.get(i) ?? 0;
    if (count > 0) value = Math.fround(Math.fround(value - Math.fround(count * frequency)) - presence);
    return temperature > 0 ? Math.fround(value / temperature) : value;
  });
  if (config.temperature <= 0) {
    let best = 0;
    for (let i = 1; i < vocab; i++) if (adjusted[i]! > adjusted[best]!) best = i;
    return best;
  }
  const maximum = Math.max(...adjusted);
  const keys = adjusted.map(key);
  let threshold = 0;
  if (config.topK > 0 && config.topK < vocab) threshold = keys.slice().sort((a, b) => b - a)[config.topK - 1]!;
  const massAbove = (cut: number) => adjusted.reduce((sum, v, i) => (keys[i]! >= cut ? sum + Math.exp(v - maximum) : sum), 0);
  if (config.topP < 1) {
    const needed = config.topP * massAbove(threshold);
    // The largest cut (at a token's key) keeping mass ≥ needed.
    const candidates = [...new Set(keys.filter((k) => k >= threshold))].sort((a, b) => b - a);
    const cut = candidates.find((c) => massAbove(c) >= needed) ?? threshold;
    threshold = Math.max(threshold, cut);
  }
  if (config.minP > 0) threshold = Math.max(threshold, key(Math.fround(maximum + Math.log(config.minP))));
  const drawn = samplingUniform(config.seed, step) * massAbove(threshold);
  let cumulative = 0;
  let last = 0;
  for (let i = 0; i < vocab; i++) {
    if (keys[i]! < threshold) continue;
    last = i;
    cumulative += Math.exp(adjusted[i]! - maximum);
    if (cumulative > drawn) return i;
  }
  return last;
}
