// `npm run bench -- kernels`: the kernel table of bench/kernel-bench.ts and tri-tiny decode speed, first in
// Node (Dawn), then in the system Chromium on the benchmark page (demo/bench.html), each against the best
// copy kernel measured in the same run on the same adapter. Not a test: it prints, it asserts nothing.
// BENCH_QUICK=1 skips the M=128 (prefill) rows, which take minutes on SwiftShader.
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';
import { createServer } from 'vite';
import { bench, describe } from 'vitest';
import { GpuContext } from '../src/gpu/context.ts';
import { getNodeGpu } from '../src/gpu/node.ts';
import { NodeModelFiles } from '../src/model/node-files.ts';
import { TriEngine } from '../src/runtime/engine.ts';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../test/chromium.ts';
import { benchCopy, benchLinear, formatBenchTable } from './kernel-bench.ts';

const quick = process.env.BENCH_QUICK === '1';
const triTiny = fileURLToPath(new URL('../public/models/tri-tiny', import.meta.url));

async function nodeReport(): Promise<string> {
  const gpu = await GpuContext.create(getNodeGpu());
  const copy = await benchCopy(gpu);
  const copyGBs = Math.max(...copy.map((row) => row.gbPerSecond));
  const linearRows = await benchLinear(gpu, copyGBs, [['q4', { format: 'q4' }], ['f16', { format: 'f16' }]], undefined, quick ? [1] : [1, 128]);
  const lines = [formatBenchTable([...copy, ...linearRows], gpu.capabilities.adapterDescription)];
  gpu.destroy();
  lines.push('', '| weights | prefill tok/s | decode tok/s | dispatches per token |', '|---|---:|---:|---:|');
  for (const format of ['f32', 'q4'] as const) {
    const engine = await TriEngine.load(new NodeModelFiles(triTiny), { gpu: getNodeGpu(), weights: { format } });
    const prompt = { tokenIds: Array.from({ length: 64 }, (_, i) => 300 + i) };
    await engine.complete(prompt, { maxNewTokens: 4 });
    const result = await engine.complete(prompt, { maxNewTokens: 32 });
    lines.push(`| ${format} | ${(64 / result.timings.prefillSeconds).toFixed(0)} | ${result.timings.decodeTokensPerSecond.toFixed(1)} | ${engine.dispatchesPerDecodedToken} |`);
    engine.dispose();
  }
  return lines.join('\n');
}

async function chromiumReport(): Promise<string> {
  const server = await createServer({ configFile: fileURLToPath(new URL('../vite.config.ts', import.meta.url)), server: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
  await server.listen();
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS, headless: true });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.resolvedUrls!.local[0]}bench.html?run${quick ? '' : '&full'}`);
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 60 * 60_000 });
    return await page.evaluate(() => {
      const rows = (id: string) => [...document.querySelectorAll(`#${id} tr`)].map((tr) => `| ${[...tr.children].map((cell) => cell.textContent).join(' | ')} |`);
      return [document.getElementById('status')!.textContent, document.getElementById('adapter')!.textContent, ...rows('results'), '', ...rows('decode')].join('\n');
    });
  } finally {
    await browser.close();
    await server.close();
  }
}

console.log(`## Node (Dawn)\n${await nodeReport()}`);
console.log(`## Chromium (benchmark page)\n${await chromiumReport()}`);

describe('kernels', () => {
  // vitest bench needs a bench; the tables above are the report.
  bench('report printed above', () => {}, { iterations: 1, warmupIterations: 0 });
});
