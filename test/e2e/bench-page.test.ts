// The benchmark page's suite in the system Chromium (SwiftShader) with small shapes, so it runs in seconds:
// every section comes back with numbers, the plots draw, and the JSON export holds them.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright';
import { type ViteDevServer, createServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../chromium.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
let server: ViteDevServer;
let browser: Browser;

beforeAll(async () => {
  server = await createServer({ configFile: join(ROOT, 'vite.config.ts'), server: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
  await server.listen();
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS, headless: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

describe('benchmark page', () => {
  it('runs the suite (?run&tiny&model=…): adapter, kernels with a plot, synthetic and named-model decode/prefill with a plot, f32 agreement 100%; downloads and keeps the results; fits a phone', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${server.resolvedUrls!.local[0]}bench.html?run&tiny&model=models/tri-tiny/`);
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 240_000 });
    expect(await page.textContent('#status')).toBe('Done.');
    const table = (id: string) => page.locator(`#${id} tbody tr`).evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent ?? '')));
    expect(await page.textContent('#adapter')).toMatch(/^Adapter: .+; shader-f16 (yes|no), subgroups (yes|no), timestamp-query (yes|no); largest buffer [\d.]+ GiB/);

    // Kernels: four copy variants (the best is 1.00 of itself), the tiny shape's GEMVs with every split-K,
    // and with subgroup shuffles (SwiftShader's subgroups are 4 wide: split-K 4 only).
    const kernels = await table('kernels');
    expect(kernels.filter((row) => row[0]!.startsWith('copy')).map((row) => row[4])).toContain('1.00');
    expect(kernels.map((row) => row[0])).toEqual(expect.arrayContaining([
      'linear q4 M=1', 'linear q4 M=1 split-K 4', 'linear q4 M=1 split-K 16', 'linear q4 M=1 split-K 4 subgroups', 'linear f16 M=1', 'linear f16 M=1 split-K 4 subgroups',
    ]));
    for (const row of kernels) expect(row.slice(2, 5).every((cell) => /^\d+\.\d\d$/.test(cell))).toBe(true);
    expect(await page.locator('#kernel-chart canvas').count()).toBe(1);
    expect(await page.locator('#kernel-chart .u-legend').innerText()).toMatch(/q4[\s\S]*split-K 4[\s\S]*f16/);
    await page.locator('#kernel-chart').screenshot({ path: join(ROOT, 'test-results/bench-kernel-chart.png') });

    // Decode and prefill: the synthetic model, then the named one, the same rows each.
    const models = await table('models');
    const labels = (name: string) => [`${name} q4 G=32 decode at position 32`, `${name} q4 G=32 decode at position 128`, `${name} q4 G=32 prefill, 16 tokens`, `${name} q4 G=32 prefill, 64 tokens`];
    expect(models.map((row) => row[0])).toEqual([
      'synthetic 4×256 q4 G=32: setup (weights made on the GPU)', ...labels('synthetic 4×256'),
      'tri-tiny q4 G=32: load', ...labels('tri-tiny'),
    ]);
    expect(models[0]![1]).toMatch(/^\d+\.\d s$/);
    const decodeRows = models.filter((row) => row[0]!.includes('decode'));
    for (const row of models.filter((r) => !r[0]!.includes(':'))) expect(row[1]).toMatch(/^\d+(\.\d+)? tok\/s$/);
    // Pipelined against the unpipelined loop; SwiftShader in Chromium has timestamp-query, so GPU time per
    // token and the GPU's idle share between steps are read.
    for (const row of decodeRows) {
      expect(row[2]).toMatch(/^\d\.\d\d of roofline .*; unpipelined [\d.]+ tok\/s \(×\d+\.\d\d faster pipelined\); \d+ dispatches\/token, host \d+\.\d\d ms\/token, (GPU \d+\.\d\d ms\/token, idle \d+\.\d% between steps \(unpipelined \d+\.\d%\)|GPU time not available \(no timestamp-query\))$/);
    }
    expect(await page.locator('#decode-chart canvas').count()).toBe(1);
    expect(await page.locator('#decode-chart .u-legend').innerText()).toMatch(/synthetic \(tiny\) measured[\s\S]*tri-tiny roofline/);
    await page.locator('#decode-chart').screenshot({ path: join(ROOT, 'test-results/bench-synthetic-chart.png') });

    // Correctness beside speed: f32 agrees with the CPU reference everywhere; q4 reports its share.
    // Host cost: per batch size, a time in ms for Tri-7B's 32 layers recorded anew and replayed, and the WebGPU calls alone.
    const host = await table('host');
    expect(host.map((row) => row[0])).toEqual([
      ...[1, 4].flatMap((n) => ['every dispatch recorded', 'layers replayed'].map((how) => `host ms per decode step, ${n} sequence${n > 1 ? 's' : ''}, ${how} (32 layers, 196 dispatches)`)),
      expect.stringMatching(/^the WebGPU calls alone for 196 dispatches/),
    ]);
    for (const row of host) expect(row[1]).toMatch(/^\d+\.\d{3} ms \(median of 10\)$/);

    const correctness = await table('correctness');
    expect(correctness.map((row) => row.slice(0, 2))).toEqual([['f32: top-1 agreement with the CPU reference', '100.0%'], ['q4: top-1 agreement with the CPU reference', expect.stringMatching(/^\d+\.\d%$/)]]);
    expect(await page.isEnabled('#run')).toBe(true);

    // The results download as JSON (the tables and the suite's result, as the CLI writes it), and the run is kept.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const results = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    expect(results.tables.models).toEqual(models);
    expect(results.tables.kernels).toEqual(kernels);
    expect(results.suite.tiny).toBe(true);
    expect(results.suite.copyGBs).toBeGreaterThan(0);
    expect(results.suite.decode.map((d: { model: string; points: unknown[] }) => [d.model, d.points.length])).toEqual([['synthetic (tiny)', 2], ['tri-tiny', 2]]);
    expect(results.suite.agreement[0]).toMatchObject({ format: 'f32', agreeing: results.suite.agreement[0].positions });
    writeFileSync(join(ROOT, 'test-results/bench-page.json'), JSON.stringify(results, null, 2));
    expect(await page.locator('#history li').count()).toBe(1);
    // On a phone the wide tables scroll inside themselves; the page does not scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ROOT, 'test-results/bench-phone.png'), fullPage: true });
    await page.goto(`${server.resolvedUrls!.local[0]}bench.html`);
    expect(await page.locator('#history li').count()).toBe(1);
    expect(errors).toEqual([]);
    await page.close();
  });
});
