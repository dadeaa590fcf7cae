// The portable benchmark (the entry of `npm run bench:bundle`'s one-file bundle): the whole suite of
// bench/suite.ts on a headless GPU server with no Node install and no network, with forced-decoding
// agreement on the bundled tri-tiny, written as JSON into the folder given as the first argument.
//   run.sh [out-folder] [--tiny]     (--tiny: small shapes, seconds even on a software GPU; CI runs it)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { NodeModelFiles } from '../src/model/node-files.ts';
import { runBenchSuite, suiteFailed } from './suite.ts';

const args = process.argv.slice(2);
const tiny = args.includes('--tiny');
const outDir = args.find((arg) => !arg.startsWith('--')) ?? 'tri-webgpu-bench-results';
const modelsDir = process.env.TRI_BENCH_MODELS ?? join(import.meta.dirname ?? '.', 'models');

const gpu = await GpuContext.create(await getNodeGpu());
console.log(`# tri-webgpu portable benchmark${tiny ? ' (--tiny)' : ''}\n`);
const result = await runBenchSuite(gpu, { tiny, correctnessModel: new NodeModelFiles(join(modelsDir, 'tri-tiny')), print: (text) => console.log(text) });
gpu.destroy();
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `tri-webgpu-bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(`results: ${file} (${result.seconds.toFixed(0)} s in all)`);
if (suiteFailed(result)) process.exitCode = 1; // a wrong GPU or driver fails the run
