// Correctness beside speed: top-1 agreement of the GPU forward with the CPU reference under forced
// decoding (the same fixed token sequence fed to both, the argmax compared at every position), so a fast
// but wrong GPU or driver shows up in the benchmark. f32 weights must agree at every position; q4 reports
// its agreement (tri-tiny q4: 87.5%, 49 of 56 positions of this passage, measured on SwiftShader).
import type { GpuContext } from '../src/gpu/context.ts';
import type { ModelFiles } from '../src/model/byte-source.ts';
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

const PASSAGE = 'Once upon a time, a small model ran in a browser. 옛날 옛적에 작은 모델이 브라우저에서 실행되었어요. It answered in English and Korean.';

/** Agreement of each weight format with the CPU f32 reference over the tokenized PASSAGE. */
export async function forcedDecodingAgreement(gpu: GpuContext, files: ModelFiles, formats: WeightFormatOptions[]): Promise<Agreement[]> {
  const opened = await openModel(files);
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
