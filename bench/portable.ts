// The portable benchmark (the entry of `npm run bench:bundle`'s one-file bundle; also runnable as is):
// the whole suite on a headless GPU server with no Node install and no network. Prints the adapter, copy
// GB/s, the kernel table at Tri-7B shapes with every split-K, the synthetic Tri-7B decode at 128/1K/4K
// positions and prefill, and forced-decoding agreement with the CPU reference on tri-tiny (f32 and q4),
// and writes all of it as JSON into the folder given as the first argument.
//   run.sh [out-folder] [--tiny]     (--tiny: small shapes, seconds even on a software GPU; CI runs it)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { NodeModelFiles } from '../src/model/node-files.ts';
import { forcedDecodingAgreement } from './correctness.ts';
import { benchAttention, benchCopy, benchLinear, formatBenchTable, TRI7B_SHAPES } from './kernel-bench.ts';
import { type SyntheticOptions, syntheticRows } from './synthetic-bench.ts';

const args = process.argv.slice(2);
const tiny = args.includes('--tiny');
const outDir = args.find((arg) => !arg.startsWith('--')) ?? 'tri-webgpu-bench-results';
const modelsDir = process.env.TRI_BENCH_MODELS ?? join(import.meta.dirname ?? '.', 'models');
const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0)} s`;
const table = (rows: string[][]) => ['| measure | value | note |', '|---|---:|---|', ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');

const gpu = await GpuContext.create(await getNodeGpu());
const { capabilities } = gpu;
console.log(`# tri-webgpu portable benchmark${tiny ? ' (--tiny)' : ''}\n`);
console.log(`adapter: ${capabilities.adapterDescription}`);
console.log(`features: shader-f16 ${capabilities.shaderF16}, subgroups ${capabilities.subgroups}, timestamp-query ${capabilities.timestampQuery}`);
console.log(`limits: maxBufferSize ${capabilities.maxBufferSize}, maxStorageBufferBindingSize ${capabilities.maxStorageBufferBindingSize}\n`);

const copy = await benchCopy(gpu);
const copyGBs = Math.max(...copy.map((row) => row.gbPerSecond));
const shapes = tiny ? [{ name: 'tiny 1024×256', n: 1024, k: 256 }] : TRI7B_SHAPES;
const kernels = [...copy, ...(await benchLinear(gpu, copyGBs, [['q4', { format: 'q4' }], ['f16', { format: 'f16' }]], shapes, tiny ? [1] : [1, 128])), ...(tiny ? [] : await benchAttention(gpu, copyGBs))];
console.log(`## Kernels (${elapsed()})\n${formatBenchTable(kernels, capabilities.adapterDescription)}\n`);

// A software adapter takes ~16 s per Tri-7B token: fewer tokens and a short prefill there.
const slow = capabilities.memoryBudgetBytes !== undefined;
const syntheticOptions: SyntheticOptions = tiny
  ? { config: { hidden_size: 256, intermediate_size: 688, num_hidden_layers: 4, num_attention_heads: 4, num_key_value_heads: 4, head_dim: 64, vocab_size: 1000, max_position_embeddings: 512 }, weights: { format: 'q4' }, decodePositions: [32, 128], prefillLengths: [16, 64], decodeTokens: 4 }
  : { weights: { format: 'q4' }, decodePositions: [128, 1024, 4096], prefillLengths: slow ? [16] : [128, 512, 2048], decodeTokens: slow ? 2 : 16 };
console.log('## Synthetic model, weights made on the GPU');
const synthetic = await syntheticRows(gpu, copyGBs, syntheticOptions, (row) => console.log(`  ${row.join(' · ')} (${elapsed()})`));
console.log(`\n${table(synthetic)}\n`);

const agreement = await forcedDecodingAgreement(gpu, new NodeModelFiles(join(modelsDir, 'tri-tiny')), [{ format: 'f32' }, { format: 'q4' }]);
const agreementRows = agreement.map(({ format, positions, agreeing }) => [`tri-tiny ${format}: top-1 agreement with the CPU reference`, `${((100 * agreeing) / positions).toFixed(1)}%`, `${agreeing} of ${positions} forced positions${format === 'f32' && agreeing !== positions ? ' — WRONG: f32 must agree everywhere' : ''}`]);
console.log(`## Correctness (${elapsed()})\n${table(agreementRows)}\n`);
gpu.destroy();

mkdirSync(outDir, { recursive: true });
const file = join(outDir, `tri-webgpu-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify({ tiny, adapter: capabilities, copyGBs, kernels, synthetic, agreement, seconds: (performance.now() - started) / 1000 }, null, 2)}\n`);
console.log(`results: ${file} (${elapsed()} in all)`);
const f32 = agreement.find((row) => row.format === 'f32')!;
if (f32.agreeing !== f32.positions) process.exitCode = 1; // a wrong GPU or driver fails the run
