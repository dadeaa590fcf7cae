// The evaluation page (/eval.html?run) in the system Chromium on SwiftShader: tri-tiny on the bundled
// parallel sample gives the golden metrics of ../shared/eval, shown per subject with a chart, and the
// JSON download holds the same numbers; the page fits a phone.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright';
import { type ViteDevServer, createServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../chromium.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SAMPLE = join(ROOT, '../shared/eval/parallel-mcq-sample');
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

describe('evaluation page', () => {
  it('the bundled sample is the shared one', () => {
    for (const language of ['en', 'ko']) expect(readFileSync(join(ROOT, `public/eval/parallel-mcq-sample/${language}.jsonl`), 'utf8')).toBe(readFileSync(join(SAMPLE, `${language}.jsonl`), 'utf8'));
  });

  it('shows tri-tiny\'s golden metrics on the sample (?run), per subject with a chart, and downloads them as JSON', async () => {
    const golden = JSON.parse(readFileSync(join(SAMPLE, 'golden-tri-tiny.json'), 'utf8'));
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${server.resolvedUrls!.local[0]}eval.html?run`);
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 180_000 });
    expect(await page.textContent('#status')).toBe('Done.');
    const rows = await page.locator('#metrics tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.children].map((td) => td.textContent ?? '')));
    const pct = (value: number) => `${(100 * value).toFixed(1)}%`;
    expect(rows[0]!.slice(0, 2)).toEqual(['all', '12']);
    expect(rows[0]![2]).toMatch(new RegExp(`^${pct(golden.metrics.en_accuracy).replace('.', '\\.')} \\(2/12\\) · 95% \\d+–\\d+%$`));
    expect(rows[0]![3]!.startsWith(`${pct(golden.metrics.ko_accuracy)} (2/12)`)).toBe(true);
    expect(rows[0]![4]!.startsWith(`${pct(golden.metrics.consistency_en_to_ko)} (2/2)`)).toBe(true);
    expect(rows[0]![5]!.startsWith(`${pct(golden.metrics.agreement)} (12/12)`)).toBe(true);
    expect(rows.length).toBeGreaterThan(2); // one row per subject
    expect(await page.locator('#chart canvas').count()).toBe(1);
    expect(await page.textContent('#throughput')).toMatch(/^24 questions in [\d.]+ s \([\d.]+ questions\/s on this GPU\), \d+ prompt tokens, \d+ of them from shared KV pages\.$/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    const report = JSON.parse(readFileSync((await download.path())!, 'utf8'));
    expect([report.metrics.sourceAccuracy.value, report.metrics.targetAccuracy.value, report.metrics.consistency.value, report.metrics.agreement.value])
      .toEqual([golden.metrics.en_accuracy, golden.metrics.ko_accuracy, golden.metrics.consistency_en_to_ko, golden.metrics.agreement]);
    report.results[1].forEach((result: { logprobs: number[] }, i: number) => {
      result.logprobs.forEach((value, c) => expect(Math.abs(value - golden.cases.ko[i].logprobs[c])).toBeLessThan(1e-3));
    });
    await page.screenshot({ path: join(ROOT, 'test-results/eval-desktop.png'), fullPage: true });
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: join(ROOT, 'test-results/eval-phone.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});
