// The npm package as users get it (npm run test:package): `npm pack`, then fresh throwaway projects in a
// temp folder install the tarball and use it with no configuration of their own:
//   (a) a Vite + TypeScript app from create-vite's vanilla-ts template (its tsconfig, TypeScript 7):
//       `tsc` type-checks the app and every README example, `vite build` bundles it, and in Chromium
//       both the dev server and the minified build generate the tri-tiny golden text on the main thread
//       and in a Web Worker (relative model URL, typed errors whose names survive minification);
//       esbuild bundles it with no loader configured;
//   (b) plain Node ESM JavaScript with `webgpu` installed: the golden ids; `require()` works too; the
//       `tri-webgpu convert` CLI makes an artifact that loads with the golden ids;
//   (c) a TypeScript project with `moduleResolution: nodenext` (TypeScript 5.9, skipLibCheck off): clean.
// And publint and @arethetypeswrong/cli on the tarball. Installs come from the npm registry (cached).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../chromium.ts';
import { modelDir, triTinyGolden } from '../fixtures.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'tri-webgpu-package-'));
const golden = Object.fromEntries(triTinyGolden().map((c) => [c.name, c]));
const plain = golden.en_plain!;
const chat = golden.chat_ko!;
const VULKAN_ENV = { VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '/usr/lib/chromium/vk_swiftshader_icd.json' };
let tarball: string;

const execFileAsync = promisify(execFile);
/** Runs a command; on failure the error carries everything it printed. */
async function run(command: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args, { cwd, env: { ...process.env, ...env }, maxBuffer: 64 * 2 ** 20 });
    return stdout + stderr;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    throw new Error(`${command} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}\n${stderr ?? ''}`, { cause: error });
  }
}

/** The last JSON line a program printed: drivers may add their own lines (Vulkan loaders print
 *  "error: XDG_RUNTIME_DIR is invalid or not set" on some machines). */
function lastJsonLine(output: string): unknown {
  const line = output.split('\n').reverse().find((candidate) => candidate.trimStart().startsWith('{'));
  if (line === undefined) throw new Error(`no JSON line in the output:\n${output}`);
  return JSON.parse(line);
}

const npmInstall = (cwd: string) => run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error'], cwd);

function writeFiles(dir: string, files: Record<string, string>): void {
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
}

/** The ```ts examples of the README, each a module of its own. */
function readmeExamples(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
}

// (a) create-vite's vanilla-ts template (create-vite 9.3.0), as a new user gets it.
const VITE_TSCONFIG = {
  compilerOptions: {
    target: 'es2023', module: 'esnext', lib: ['ES2023', 'DOM'], types: ['vite/client'], allowArbitraryExtensions: true, skipLibCheck: true,
    moduleResolution: 'bundler', allowImportingTsExtensions: true, verbatimModuleSyntax: true, moduleDetection: 'force', noEmit: true,
    noUnusedLocals: true, noUnusedParameters: true, erasableSyntaxOnly: true, noFallthroughCasesInSwitch: true,
  },
  include: ['src'],
};

/** The page: generate on the main thread and in a worker, report to document.body.dataset.report. */
const VITE_MAIN = `import { InvalidRequestError, TriEngine, WorkerEngine } from 'tri-webgpu';

const plain = ${JSON.stringify({ prompt: plain.prompt, maxNewTokens: plain.greedy_ids.length })};
const messages = ${JSON.stringify(chat.messages)};

function describeError(error: unknown) {
  return { name: (error as Error).name, code: (error as InvalidRequestError).code, typed: error instanceof InvalidRequestError };
}

async function main(): Promise<Record<string, unknown>> {
  const engine = await TriEngine.load('/models/tri-tiny/', { weights: { format: 'f32' } });
  const stream = engine.generate(plain.prompt, { maxNewTokens: plain.maxNewTokens });
  let mainText = '';
  for await (const { text } of stream) mainText += text;
  const { tokenIds, finishReason } = await stream.result;
  const mainError = await engine.complete('hi', { topP: 0 }).then(() => undefined, describeError);
  engine.dispose();

  const worker = new Worker(new URL('./engine.worker.ts', import.meta.url), { type: 'module' });
  const remote = await WorkerEngine.load(worker, '/models/tri-tiny/', { weights: { format: 'f32' } });
  const completion = await remote.chat.completions.create({ model: 'tri-tiny', messages, max_tokens: 48 });
  const workerError = await remote.complete('hi', { topP: 0 }).then(() => undefined, describeError);
  remote.dispose();
  worker.terminate();
  return { mainText, tokenIds, finishReason, mainError, workerText: completion.choices[0]?.message.content, workerError };
}

main().then(
  (report) => {
    document.body.dataset.report = JSON.stringify(report);
    document.title = 'done';
  },
  (error: unknown) => {
    document.body.dataset.report = JSON.stringify({ failed: String(error), stack: (error as Error).stack });
    document.title = 'failed';
  },
);
`;

const VITE_WORKER = `import { serveEngine } from 'tri-webgpu/worker';

serveEngine(self);
`;

// (b) plain Node ESM JavaScript.
const NODE_MAIN = `import { TriEngine } from 'tri-webgpu';
import { NodeModelFiles, getNodeGpu } from 'tri-webgpu/node';

const [dir, prompt, maxNewTokens] = process.argv.slice(2);
const engine = await TriEngine.load(new NodeModelFiles(dir), { gpu: await getNodeGpu() });
const result = await engine.complete(prompt, { maxNewTokens: Number(maxNewTokens) });
console.log(JSON.stringify({ ids: result.tokenIds, text: result.text }));
engine.dispose();
process.exit(0);
`;

// (c) TypeScript under nodenext, using all three entries.
const NODENEXT_TSCONFIG = {
  compilerOptions: {
    target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022', 'dom'], types: ['node'],
    strict: true, noEmit: true, skipLibCheck: false, exactOptionalPropertyTypes: true, noUncheckedIndexedAccess: true,
  },
  include: ['src'],
};
const NODENEXT_MAIN = `import { type GenerationResult, TriEngine, TriWebGPUError } from 'tri-webgpu';
import { NodeModelFiles, getNodeGpu } from 'tri-webgpu/node';
import { WorkerEngine, serveEngine } from 'tri-webgpu/worker';

export async function answer(dir: string): Promise<GenerationResult> {
  const engine = await TriEngine.load(new NodeModelFiles(dir), { gpu: await getNodeGpu() });
  try {
    const completion = await engine.chat.completions.create({ messages: [{ role: 'user', content: '안녕하세요' }], max_tokens: 16 });
    console.log(completion.choices[0]?.message.content, completion.usage.total_tokens);
    const stream = engine.generate('Hello', { maxNewTokens: 4 });
    for await (const { text } of stream) process.stdout.write(text);
    return await stream.result;
  } catch (error) {
    if (error instanceof TriWebGPUError) console.error(error.code);
    throw error;
  } finally {
    engine.dispose();
  }
}

export const workerApi: [typeof WorkerEngine.load, typeof serveEngine] = [WorkerEngine.load, serveEngine];
`;

let viteApp: string;
let nodeApp: string;

beforeAll(async () => {
  await run('npm', ['pack', '--pack-destination', work, '--loglevel=error'], ROOT);
  tarball = join(work, readdirSync(work).find((name) => name.endsWith('.tgz'))!);

  viteApp = join(work, 'vite-app');
  writeFiles(viteApp, {
    'package.json': JSON.stringify({
      name: 'vite-consumer', private: true, type: 'module',
      dependencies: { 'tri-webgpu': `file:${tarball}` }, devDependencies: { typescript: '~7.0.2', vite: '8.3.8', esbuild: '0.28.2' },
    }),
    'tsconfig.json': JSON.stringify(VITE_TSCONFIG),
    'index.html': '<!doctype html>\n<html lang="en"><head><meta charset="UTF-8" /><title>consumer</title></head>\n<body><script type="module" src="/src/main.ts"></script></body></html>\n',
    'src/main.ts': VITE_MAIN,
    'src/engine.worker.ts': VITE_WORKER,
    // The README's examples, as written (each a module of its own).
    ...Object.fromEntries(readmeExamples().map((code, i) => [`src/readme-${i}.ts`, `${code}\nexport {};\n`])),
  });
  cpSync(modelDir('tri-tiny'), join(viteApp, 'public/models/tri-tiny'), { recursive: true });

  nodeApp = join(work, 'node-app');
  writeFiles(nodeApp, {
    'package.json': JSON.stringify({
      name: 'node-consumer', private: true, type: 'module',
      dependencies: { 'tri-webgpu': `file:${tarball}`, webgpu: '0.6.2' }, devDependencies: { typescript: '5.9.3', '@types/node': '20.19.43' },
    }),
    'main.mjs': NODE_MAIN,
    'tsconfig.json': JSON.stringify(NODENEXT_TSCONFIG),
    'src/main.ts': NODENEXT_MAIN,
  });
  await Promise.all([npmInstall(viteApp), npmInstall(nodeApp)]);
}, 600_000);

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('the packed tarball', () => {
  it('holds only what users need (dist, README, LICENSE) and stays under 300 kB', async () => {
    const listing = await run('tar', ['tzf', tarball], work);
    const files = listing.trim().split('\n').map((name) => name.replace(/^package\//, ''));
    expect(files.filter((name) => !/^(dist\/.*\.(js|d\.ts)|README\.md|FORMAT\.md|LICENSE|package\.json)$/.test(name))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['dist/index.js', 'dist/index.d.ts', 'dist/node.js', 'dist/worker.js', 'LICENSE']));
    const size = statSync(tarball).size;
    console.log(`tarball: ${(size / 1000).toFixed(1)} kB, ${files.length} files`);
    expect(size).toBeLessThan(300_000);
    // Every shader is inlined: no .wgsl file, no ?raw import left.
    const installed = join(viteApp, 'node_modules/tri-webgpu/dist');
    const code = readdirSync(installed, { recursive: true }).filter((name) => String(name).endsWith('.js'))
      .map((name) => readFileSync(join(installed, String(name)), 'utf8')).join('\n');
    expect(code).not.toMatch(/(from|import\()\s*["'][^"']*\.wgsl/);
    expect(code).toMatch(/@compute @workgroup_size/);
  });

  it('passes publint (strict) and @arethetypeswrong/cli (ESM-only profile)', async () => {
    expect(await run('npx', ['publint', 'run', tarball, '--strict'], ROOT)).toMatch(/All good!/);
    // The package is ESM only, so attw's CommonJS resolution modes (node10, node16-cjs) are out of scope.
    // (fflate is pinned to 0.8.2 in package.json: attw 0.18.2 fails to read tarballs with fflate 0.8.3.)
    const attw = await run('npx', ['attw', tarball, '--profile', 'esm-only', '--format', 'ascii'], ROOT);
    expect(attw).not.toMatch(/error while checking/);
  });
});

describe('(a) a Vite + TypeScript app (create-vite vanilla-ts)', () => {
  it('type-checks with the template\'s tsconfig, README examples included, and builds with vite build', async () => {
    await run('npx', ['tsc'], viteApp);
    const output = await run('npx', ['vite', 'build'], viteApp);
    expect(output).toMatch(/built in/);
  }, 300_000);

  it('bundles with esbuild too, with no loader configured', async () => {
    await run('npx', ['esbuild', 'src/main.ts', 'src/engine.worker.ts', '--bundle', '--format=esm', '--outdir=esbuild-out'], viteApp);
    const bundle = readFileSync(join(viteApp, 'esbuild-out/main.js'), 'utf8');
    expect(bundle).toMatch(/@compute @workgroup_size/);
    expect(bundle, 'no Node builtin in a browser bundle').not.toMatch(/["']node:/);
  });

  for (const mode of ['dev server', 'vite build + preview'] as const) {
    it(`generates the golden text in Chromium on the main thread and in a Web Worker (${mode})`, async () => {
      const port = mode === 'dev server' ? 5391 : 5392;
      const args = mode === 'dev server' ? ['vite', '--port', String(port), '--strictPort'] : ['vite', 'preview', '--port', String(port), '--strictPort'];
      // Its own process group, so that stopping it also stops the vite process npx starts.
      const server = spawn('npx', args, { cwd: viteApp, stdio: 'pipe', detached: true });
      try {
        await waitForServer(server, `http://localhost:${port}/`);
        const report = await reportFromPage(`http://localhost:${port}/`);
        expect(report.failed, String(report.stack)).toBeUndefined();
        expect(report.mainText).toBe(plain.decoded_text);
        expect(report.tokenIds).toEqual(plain.greedy_ids);
        expect(report.finishReason).toBe('stop');
        expect(report.workerText).toBe(chat.decoded_text);
        // Names are literals, so a minified build still says which error it is; the worker maps by code.
        for (const error of [report.mainError, report.workerError]) expect(error).toEqual({ name: 'InvalidRequestError', code: 'INVALID_REQUEST', typed: true });
      } finally {
        process.kill(-server.pid!, 'SIGTERM');
      }
    }, 300_000);
  }

  it('tells a Node user without the optional `webgpu` package what to install', async () => {
    const script = "import('tri-webgpu/node').then((m) => m.getNodeGpu()).catch((e) => console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message })));";
    const error = lastJsonLine(await run('node', ['--input-type=module', '-e', script], viteApp)) as { message: string };
    expect(error).toMatchObject({ name: 'WebGPUUnavailableError', code: 'WEBGPU_UNAVAILABLE' });
    expect(error.message).toMatch(/npm install webgpu/);
  });
});

describe('(b) plain Node ESM JavaScript with webgpu installed', () => {
  it('generates the golden ids and text', async () => {
    const out = await run('node', ['main.mjs', modelDir('tri-tiny'), plain.prompt, String(plain.greedy_ids.length)], nodeApp, VULKAN_ENV);
    const result = lastJsonLine(out) as { ids: number[]; text: string };
    expect(result.ids).toEqual(plain.greedy_ids);
    expect(result.text).toBe(plain.decoded_text);
  }, 120_000);

  it('converts a model with `npx tri-webgpu convert`, and the artifact loads with the golden ids', async () => {
    const out = join(nodeApp, 'tri-tiny-f32');
    const log = await run('npx', ['tri-webgpu', 'convert', modelDir('tri-tiny'), out, '--weights', 'f32'], nodeApp);
    expect(log).toMatch(/1 shard\(s\)/);
    const result = lastJsonLine(await run('node', ['main.mjs', out, plain.prompt, String(plain.greedy_ids.length)], nodeApp, VULKAN_ENV)) as { ids: number[] };
    expect(result.ids).toEqual(plain.greedy_ids);
    await expect(run('npx', ['tri-webgpu', 'convert', join(nodeApp, 'no-such-folder'), out], nodeApp)).rejects.toThrow(/ModelFileMissingError: config\.json is missing/);
  }, 120_000);

  it('benchmarks with `npx tri-webgpu bench --tiny --model … --json …`: kernels, the synthetic model and the named one, f32 agreement 100%', async () => {
    const json = join(nodeApp, 'bench.json');
    const log = await run('npx', ['tri-webgpu', 'bench', '--tiny', '--model', modelDir('tri-tiny'), '--json', json], nodeApp, VULKAN_ENV);
    expect(log).toMatch(/^\| synthetic 4×256 q4 G=32 decode at position 128 \| [\d.]+ tok\/s \|/m);
    expect(log).toMatch(/^\| tri-tiny q4 G=32 decode at position 128 \| [\d.]+ tok\/s \| [\d.]+ of roofline/m); // --model is measured too
    expect(log).toMatch(/^\| f32: top-1 agreement with the CPU reference \| 100\.0% \|/m);
    const result = JSON.parse(readFileSync(json, 'utf8'));
    expect(result.synthetic).toHaveLength(10);
    expect(result.decode.map((d: { model: string }) => d.model)).toEqual(['synthetic (tiny)', 'tri-tiny']);
    expect(result.agreement.map((row: { format: string }) => row.format)).toEqual(['f32', 'q4']);
  }, 300_000);

  it('evaluates with `npx tri-webgpu eval <model> en.jsonl ko.jsonl --json …`: the golden metrics of ../shared/eval on tri-tiny', async () => {
    const data = fileURLToPath(new URL('../../../shared/eval/parallel-mcq-sample/', import.meta.url));
    const golden = JSON.parse(readFileSync(join(data, 'golden-tri-tiny.json'), 'utf8')).metrics;
    const json = join(nodeApp, 'eval.json');
    const log = await run('npx', ['tri-webgpu', 'eval', modelDir('tri-tiny'), join(data, 'en.jsonl'), join(data, 'ko.jsonl'), '--json', json], nodeApp, VULKAN_ENV);
    expect(log).toMatch(/^\| \*\*all\*\* \| 12 \| 16\.7% \(2\/12, 95% [\d.]+–[\d.]+%\) \| 16\.7% \(2\/12/m);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect([report.metrics.sourceAccuracy.value, report.metrics.targetAccuracy.value, report.metrics.consistency.value, report.metrics.agreement.value])
      .toEqual([golden.en_accuracy, golden.ko_accuracy, golden.consistency_en_to_ko, golden.agreement]);
    // The library entry too, from the package.
    const out = await run('node', ['-e', "import('tri-webgpu/eval').then((e) => console.log(e.mcqPrompt({ sample_id: 'x', subject: 'world_history', question: 'Q?', option_a: '1', option_b: '2', option_c: '3', option_d: '4', answer: 'A' }).split('\\n')[0]))"], nodeApp);
    expect(out.trim()).toBe('The following are multiple choice questions (with answers) about world history.');
  }, 300_000);

  it('loads from CommonJS too (require of an ES module, Node ≥ 20.19)', async () => {
    const out = await run('node', ['-e', "const t = require('tri-webgpu'); const n = require('tri-webgpu/node'); console.log(typeof t.TriEngine.load, typeof n.NodeModelFiles)"], nodeApp);
    expect(out).toMatch(/function function/);
  });
});

describe('(c) TypeScript with moduleResolution nodenext', () => {
  it('type-checks cleanly (strict, exactOptionalPropertyTypes, skipLibCheck off)', async () => {
    await run('npx', ['tsc', '--noEmit'], nodeApp);
  }, 120_000);
});

async function waitForServer(server: ChildProcess, url: string): Promise<void> {
  let output = '';
  server.stdout?.on('data', (data) => (output += data));
  server.stderr?.on('data', (data) => (output += data));
  for (let attempt = 0; attempt < 120; attempt++) {
    if (server.exitCode !== null) throw new Error(`the server exited: ${output}`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not up yet
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`the server did not answer at ${url}: ${output}`);
}

async function reportFromPage(url: string): Promise<Record<string, unknown>> {
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS, headless: true });
  try {
    const page = await browser.newPage();
    const console: string[] = [];
    page.on('console', (message) => console.push(message.text()));
    page.on('pageerror', (error) => console.push(String(error)));
    await page.goto(url);
    await page.waitForFunction(() => document.title === 'done' || document.title === 'failed', undefined, { timeout: 240_000 }).catch((error: unknown) => {
      throw new Error(`the page did not finish: ${console.join('\n')}`, { cause: error });
    });
    return JSON.parse((await page.evaluate(() => document.body.dataset.report)) ?? '{}');
  } finally {
    await browser.close();
  }
}
