// The benchmark page's synthetic-model section in the system Chromium (SwiftShader), on a small config so
// it runs in seconds: the weights are made on the GPU, and every row comes back with a number.
import { readFileSync } from 'node:fs';
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
  it('measures a synthetic model made on the GPU (?synthetic&syntheticConfig=tiny): setup, decode at two positions with the roofline, prefill; downloads and keeps the results; fits a phone', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${server.resolvedUrls!.local[0]}bench.html?synthetic&syntheticConfig=tiny`);
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 120_000 });
    expect(await page.textContent('#status')).toBe('Done.');
    const rows = await page.locator('#synthetic tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent ?? '')));
    expect(rows.map((row) => row[0])).toEqual([
      'synthetic 4×256 q4 G=32: setup (weights made on the GPU)',
      'synthetic 4×256 q4 G=32 decode at position 32',
      'synthetic 4×256 q4 G=32 decode at position 128',
      'synthetic 4×256 q4 G=32 prefill, 16 tokens',
      'synthetic 4×256 q4 G=32 prefill, 64 tokens',
    ]);
    expect(rows[0]![1]).toMatch(/^\d+\.\d s$/);
    for (const row of rows.slice(1)) expect(row[1]).toMatch(/^\d+(\.\d+)? tok\/s$/);
    for (const row of rows.slice(1, 3)) expect(row[2]).toMatch(/^\d\.\d\d of roofline .* \d+ dispatches\/token, host \d+\.\d\d ms\/token$/);
    expect(await page.isEnabled('#run-synthetic')).toBe(true);
    // The plot of decode tok/s against position (uPlot draws on a canvas, with a legend of its series).
    expect(await page.locator('#synthetic-chart canvas').count()).toBe(1);
    expect(await page.locator('#synthetic-chart .u-legend').innerText()).toMatch(/measured[\s\S]*roofline/);
    await page.locator('#synthetic-chart').screenshot({ path: join(ROOT, 'test-results/bench-synthetic-chart.png') });
    // The results download as JSON, and the run is kept for later comparison.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const results = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    expect(results.adapter).toMatch(/^Adapter: .+; shader-f16 (yes|no), subgroups (yes|no), timestamp-query (yes|no); largest buffer [\d.]+ GiB/);
    expect(results.tables.synthetic).toEqual(rows);
    expect(await page.locator('#history li').count()).toBe(1);
    await page.reload();
    expect(await page.locator('#history li').count()).toBe(1);
    // On a phone the wide tables scroll inside themselves; the page does not scroll sideways.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    expect(errors).toEqual([]);
    await page.close();
  });
});
