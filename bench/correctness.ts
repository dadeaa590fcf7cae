// Correctness beside speed: top-1 agreement of the GPU forward with the CPU reference under forced
// decoding (the same fixed token sequence fed to both, the argmax compared at every position), so a fast
// but wrong GPU or driver shows up in the benchmark. f32 weights must agree at every position; q4 reports
// its agreement (tri-tiny q4: 87.5%, 49 of 56 positions of this passage, measured on SwiftShader).
import type { GpuContext } from '../src/gpu/context.ts';
import type { ModelFiles } from '../src/model/byte-source.ts';
import type { LlamaSpec } from '../src/model/config.ts';
import { GpuLlama } from '../src/model/llama-gpu.ts';
import { loadLlamaWeightsF32 } from '../src/model/llama-weights.ts';
import { openModel } from '../src/model/open.ts';
import type { WeightFormatOptions } from '../src/model/quant.ts';
import { ReferenceLlama, argmax } from '../src/reference/llama.ts';

export interface Agreement {
  format: string;
  positions: number;
  agreeing: number;
}

/** The CPU reference holds f32 weights in JS memory: beyond this it is not tried (Tri-7B's would be ~30 GB). */
export const REFERENCE_BYTES_LIMIT = 2 ** 31;

/** f32 bytes of a model's weights: the memory the CPU reference needs. */
export function referenceBytes(spec: LlamaSpec): number {
  const { hiddenSize: h, intermediateSize: f, numLayers, numHeads, numKvHeads, headDim, vocabSize, tieWordEmbeddings } = spec;
  const layer = h * (numHeads + 2 * numKvHeads) * headDim + numHeads * headDim * h + 3 * h * f + 2 * h;
  return 4 * (vocabSize * h * (tieWordEmbeddings ? 1 : 2) + numLayers * layer + h);
}

export class ReferenceTooLargeError extends RangeError {}

const PASSAGE = 'Once upon a time, a small model ran in a browser. 옛날 옛적에 작은 모델이 브라우저에서 실행되었어요. It answered in English and Korean.';

/** Agreement of each weight format with the CPU f32 reference over the tokenized PASSAGE. */
export async function forcedDecodingAgreement(gpu: GpuContext, files: ModelFiles, formats: WeightFormatOptions[]): Promise<Agreement[]> {
  const opened = await openModel(files);
  if (referenceBytes(opened.spec) > REFERENCE_BYTES_LIMIT) {
    throw new ReferenceTooLargeError(`the CPU reference of this model would need ${(referenceBytes(opened.spec) / 2 ** 30).toFixed(1)} GiB of JS memory; check correctness on a small model (tri-tiny)`);
  }
  const tokens = opened.text.encode(PASSAGE);
  const reference = new ReferenceLlama(opened.spec, await loadLlamaWeightsF32(opened.spec, opened.checkpoint), tokens.length);
  const expected = tokens.map((token) => argmax(reference.forward(token)));
  const results: Agreement[] = [];
  for (const weights of formats) {
    const model = await GpuLlama.load(gpu, opened.spec, opened.checkpoint, { weights, contextLength: Math.max(64, tokens.length), maxSequences: 1 });
    try {
      let agreeing = 0;
      for (const [position, token] of tokens.entries()) if ((await model.forwardArgmax([token])) === expected[position]) agreeing++;
      results.push({ format: weights.format, positions: tokens.length, agreeing });
    } finally {
      model.destroy();
    }
  }
  return results;
}

/** The agreement as table rows: label, value, note. */
export function agreementRows(agreement: readonly Agreement[]): [string, string, string][] {
  return agreement.map(({ format, positions, agreeing }) => [
    `${format}: top-1 agreement with the CPU reference`, `${((100 * agreeing) / positions).toFixed(1)}%`,
    `${agreeing} of ${positions} forced positions${format === 'f32' && agreeing !== positions ? ' — WRONG: f32 must agree everywhere' : ''}`,
  ]);
}
