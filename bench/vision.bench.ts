// `npm run bench -- vision`: the vision half of tri-tiny-llava in Node (Dawn): time to encode one picture
// on the GPU (tower + projector, read back), and prefill tok/s of a prompt with a picture (79 tokens: 64
// image rows) against the same length of text, in f32 and q4 (f16 tower). Not a test: it prints, it
// asserts nothing. Under a minute on 2 cores with SwiftShader.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { bench, describe } from 'vitest';
import { getNodeGpu } from '../src/gpu/node.ts';
import { NodeModelFiles } from '../src/model/node-files.ts';
import type { WeightFormatOptions } from '../src/model/quant.ts';
import { TriEngine } from '../src/runtime/engine.ts';
import { decodeImage } from '../src/vision/decode-node.ts';

const DIR = fileURLToPath(new URL('../public/models/tri-tiny-llava/', import.meta.url));
const pictures = ['red-circle-0', 'blue-square-1', 'yellow-triangle-2', 'green-circle-3', 'white-square-4', 'black-triangle-5']
  .map((name) => decodeImage(readFileSync(`${DIR}images/${name}.png`)));
const lines = ['| weights | picture → features: preprocess, GPU encode, read back (ms, median of 5) | prefill with a picture (tok/s) | prefill of text, same length (tok/s) |', '|---|---:|---:|---:|'];
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

for (const weights of [{ format: 'f32' }, { format: 'q4', groupSize: 32 }] as WeightFormatOptions[]) {
  const engine = await TriEngine.load(new NodeModelFiles(DIR), { gpu: await getNodeGpu(), weights });
  const ask = (image: (typeof pictures)[number]) => [{ role: 'user', content: [{ type: 'image' as const, image }, { type: 'text' as const, text: 'What is in the image?' }] }];
  await engine.complete(ask(pictures[0]!), { maxNewTokens: 1 }); // compiles the kernels
  const encodeMs: number[] = [];
  const prefill: number[] = [];
  for (const picture of pictures.slice(1)) {
    // A new picture each time: encoded, then prefilled from the first page (no shared pages).
    const started = performance.now();
    const result = await engine.complete(ask(picture), { maxNewTokens: 1 });
    encodeMs.push(performance.now() - started - result.timings.prefillSeconds * 1000);
    prefill.push(result.usage.promptTokens / result.timings.prefillSeconds);
  }
  const text = await engine.complete({ tokenIds: Array.from({ length: 79 }, (_, i) => 300 + i) }, { maxNewTokens: 1 });
  lines.push(`| ${weights.format} | ${median(encodeMs).toFixed(1)} | ${median(prefill).toFixed(0)} | ${(text.usage.promptTokens / text.timings.prefillSeconds).toFixed(0)} |`);
  engine.dispose();
}
console.log(`## Node (Dawn): tri-tiny-llava, one 64×64 picture\n${lines.join('\n')}`);

describe('vision', () => {
  // vitest bench needs a bench; the table above is the report.
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
