#!/usr/bin/env node
// `npx tri-webgpu convert <hf-model-folder> <out-folder> [--weights q4|q4-min|f16|f32] [--group 32|64|128]`:
// a pre-converted artifact (FORMAT.md) on the CPU, no GPU needed.
// `npx tri-webgpu bench [--model <folder>] [--json <file>] [--tiny]`: the benchmark suite (bench/suite.ts)
// on this machine's GPU through Dawn (the optional `webgpu` package); --model measures that model's decode
// and prefill like the synthetic one's and, when it is small, its forced-decoding agreement with the CPU
// reference.
// `npx tri-webgpu eval <model-folder> <source-file> <target-file> [--languages en,ko] [--weights …] [--json <file>]`:
// the cross-lingual multiple-choice evaluation (src/eval/) on this machine's GPU; files are .jsonl, .csv or
// .parquet, local or http(s) URLs (e.g. Global-MMLU-Lite's on the Hugging Face hub).
import { basename, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { TriWebGPUError } from './errors.ts';
import { convertModelFolder } from './model/node-convert.ts';
import type { McqRow as McqRowType } from './eval/cross-lingual.ts';
import type { Q4GroupSize, WeightFormatOptions } from './model/quant.ts';

const USAGE = [
  'usage: tri-webgpu convert <hf-model-folder> <out-folder> [--weights q4|q4-min|f16|f32] [--group 32|64|128]',
  '       tri-webgpu bench [--model <folder>] [--json <file>] [--tiny]',
  '       tri-webgpu eval <model-folder> <source-file> <target-file> [--languages en,ko] [--weights f32|f16|q4] [--json <file>]',
  '                       [--shots <k> --source-dev <file> --target-dev <file>]',
].join('\n');

/** A data file's bytes: a local path or an http(s) URL. */
async function readData(location: string): Promise<ArrayBuffer> {
  if (/^https?:\/\//.test(location)) {
    const response = await fetch(location);
    if (!response.ok) throw new Error(`${location}: HTTP ${response.status}`);
    return response.arrayBuffer();
  }
  const { readFile } = await import('node:fs/promises');
  const bytes = await readFile(location);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

interface EvalOptions {
  languages: string;
  weights?: string;
  json?: string;
  shots?: string;
  sourceDev?: string;
  targetDev?: string;
}

async function evaluate(modelFolder: string, sourceFile: string, targetFile: string, options: EvalOptions): Promise<void> {
  const [{ getNodeGpu }, { NodeModelFiles }, { TriEngine }, evaluation, { formatReport }, { writeFile }] = await Promise.all([
    import('./gpu/node.ts'), import('./model/node-files.ts'), import('./runtime/engine.ts'), import('./eval/cross-lingual.ts'), import('./eval/report.ts'), import('node:fs/promises'),
  ]);
  const languages = options.languages.split(',').map((language) => language.trim());
  if (languages.length !== 2 || languages.some((language) => !language)) throw new Error(`--languages takes two names, e.g. en,ko (got ${options.languages})`);
  const [source, target] = await Promise.all([sourceFile, targetFile].map(async (file) => evaluation.parseMcqFile(await readData(file), basename(file))));
  const pairs = evaluation.matchRows(source!, target!, [basename(sourceFile), basename(targetFile)]);
  let shots: [Map<string, McqRowType[]>, Map<string, McqRowType[]>] | undefined;
  if (options.shots !== undefined) {
    const k = Number(options.shots);
    if (!Number.isInteger(k) || k < 1) throw new Error(`--shots must be a whole number ≥ 1 (got ${options.shots})`);
    if (!options.sourceDev || !options.targetDev) throw new Error('--shots needs --source-dev and --target-dev (each language\'s dev split)');
    const dev = await Promise.all([options.sourceDev, options.targetDev].map(async (file) => evaluation.parseMcqFile(await readData(file), basename(file))));
    shots = [evaluation.shotsBySubject(dev[0]!, k), evaluation.shotsBySubject(dev[1]!, k)];
  }
  const weights = options.weights ? weightsOption(options.weights, 32) : undefined;
  const engine = await TriEngine.load(new NodeModelFiles(modelFolder), { gpu: await getNodeGpu(), maxSequences: 8, ...(weights ? { weights } : {}) });
  try {
    const started = performance.now();
    const report = await evaluation.evaluateCrossLingual(engine, pairs, {
      languages: languages as [string, string],
      ...(shots ? { shots } : {}),
      onProgress: (done, total) => {
        const seconds = (performance.now() - started) / 1000;
        const eta = done < total ? `, about ${Math.ceil((seconds / done) * (total - done))} s left` : '';
        process.stderr.write(`\r${done} / ${total} questions scored${eta}   `);
      },
    });
    process.stderr.write('\n');
    console.log(formatReport(report));
    if (options.json) await writeFile(options.json, `${JSON.stringify(report, null, 2)}\n`);
  } finally {
    engine.dispose();
  }
}

async function bench(options: { model?: string; json?: string; tiny: boolean }): Promise<void> {
  const [{ getNodeGpu }, { GpuContext }, { NodeModelFiles }, { runBenchSuite, suiteFailed }, { writeFile }] = await Promise.all([
    import('./gpu/node.ts'), import('./gpu/context.ts'), import('./model/node-files.ts'), import('../bench/suite.ts'), import('node:fs/promises'),
  ]);
  const gpu = await GpuContext.create(await getNodeGpu());
  try {
    const model = options.model ? new NodeModelFiles(options.model) : undefined;
    const named = model ? { correctnessModel: model, model: { name: basename(resolve(options.model!)), files: model } } : {};
    const result = await runBenchSuite(gpu, { tiny: options.tiny, ...named, print: (text) => console.log(text) });
    if (options.json) await writeFile(options.json, `${JSON.stringify(result, null, 2)}\n`);
    if (suiteFailed(result)) process.exitCode = 1;
  } finally {
    gpu.destroy();
  }
}

function weightsOption(name: string, group: number): WeightFormatOptions {
  if (![32, 64, 128].includes(group)) throw new Error(`--group must be 32, 64 or 128 (got ${group})`);
  if (name === 'q4' || name === 'q4-min') return { format: 'q4', groupSize: group as Q4GroupSize, withMin: name === 'q4-min' };
  if (name === 'f16' || name === 'f32') return { format: name };
  throw new Error(`--weights must be q4, q4-min, f16 or f32 (got ${name})`);
}

async function main(argv: string[]): Promise<void> {
  const { positionals, values } = parseArgs({
    args: argv, allowPositionals: true,
    options: {
      weights: { type: 'string', default: 'q4' }, group: { type: 'string', default: '32' }, help: { type: 'boolean', short: 'h' },
      model: { type: 'string' }, json: { type: 'string' }, tiny: { type: 'boolean', default: false }, languages: { type: 'string', default: 'en,ko' },
      shots: { type: 'string' }, 'source-dev': { type: 'string' }, 'target-dev': { type: 'string' },
    },
  });
  const [command, input, output] = positionals;
  if (command === 'eval' && !values.help && positionals.length === 4) {
    const weights = argv.some((arg) => arg === '--weights' || arg.startsWith('--weights=')) ? values.weights! : undefined;
    const optional = { weights, json: values.json, shots: values.shots, sourceDev: values['source-dev'], targetDev: values['target-dev'] };
    const given = Object.fromEntries(Object.entries(optional).filter(([, value]) => value !== undefined)) as Omit<EvalOptions, 'languages'>;
    return evaluate(input!, output!, positionals[3]!, { languages: values.languages!, ...given });
  }
  if (command === 'bench' && !values.help) {
    return bench({ tiny: values.tiny!, ...(values.model ? { model: values.model } : {}), ...(values.json ? { json: values.json } : {}) });
  }
  if (values.help || command !== 'convert' || !input || !output) {
    console.log(USAGE);
    process.exitCode = values.help ? 0 : 2;
    return;
  }
  const weights = weightsOption(values.weights!, Number(values.group));
  const started = performance.now();
  let lastDraw = 0;
  const manifest = await convertModelFolder(input, output, {
    weights,
    onProgress: (done, total) => {
      const now = performance.now();
      if (now - lastDraw < 200 && done < total) return;
      lastDraw = now;
      const fraction = total ? done / total : 1;
      const bar = '#'.repeat(Math.round(fraction * 30)).padEnd(30, '.');
      process.stderr.write(`\r[${bar}] ${(fraction * 100).toFixed(1)}%  ${(done / 2 ** 20).toFixed(0)} / ${(total / 2 ** 20).toFixed(0)} MiB`);
    },
  });
  const bytes = manifest.shards.reduce((sum, shard) => sum + shard.bytes, 0);
  process.stderr.write('\n');
  console.log(`${output}: ${manifest.shards.length} shard(s), ${(bytes / 2 ** 20).toFixed(1)} MiB of ${JSON.stringify(weights)} weights in ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  console.error(error instanceof TriWebGPUError ? `${error.name}: ${error.message}` : String((error as Error).message ?? error));
  process.exitCode = 1;
});
