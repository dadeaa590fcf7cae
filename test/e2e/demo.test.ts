// Playwright drives the demo page in the system Chromium (WebGPU on SwiftShader): the bundled tri-tiny
// model loads, a prompt streams the golden continuation, and a browser without WebGPU gets a clear message.
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright';
import { type ViteDevServer, createServer } from 'vite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../chromium.ts';
import { triTinyGolden } from '../fixtures.ts';

let server: ViteDevServer;
let browser: Browser;
let baseUrl: string;

beforeAll(async () => {
  server = await createServer({
    configFile: fileURLToPath(new URL('../../vite.config.ts', import.meta.url)),
    server: { port: 0, host: '127.0.0.1' },
    logLevel: 'warn',
  });
  await server.listen();
  baseUrl = server.resolvedUrls!.local[0]!;
  browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS, headless: true });
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const golden = Object.fromEntries(triTinyGolden().map((c) => [c.name, c]));

describe('demo page', () => {
  it('loads the bundled tri-tiny, streams the golden English continuation with tok/s, then a Korean chat reply', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(baseUrl);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 60_000 });

    // Plain continuation; watch the output grow to prove it streams rather than arriving at once.
    await page.fill('#prompt', golden.en_plain!.prompt);
    await page.fill('#max-tokens', '48');
    const lengths: number[] = [];
    const sampler = setInterval(() => {
      page.evaluate(() => document.getElementById('output')!.textContent!.length).then((n) => lengths.push(n), () => {});
    }, 20);
    await page.click('#generate');
    await page.waitForSelector('body[data-state="ready"]');
    clearInterval(sampler);
    expect(await page.textContent('#output')).toBe(golden.en_plain!.decoded_text);
    expect(await page.textContent('#stats')).toMatch(/14 tokens, \d+(\.\d+)? tok\/s decode, .*\(0 from the KV cache\), finish: stop/);
    expect(new Set(lengths.filter((n) => n > 0 && n < golden.en_plain!.decoded_text.length)).size).toBeGreaterThan(0);

    // Korean chat through the ChatML template.
    await page.check('#chat-mode');
    await page.fill('#prompt', golden.chat_ko!.messages!.at(-1)!.content);
    await page.click('#generate');
    await page.waitForSelector('body[data-state="ready"]');
    const korean = await page.textContent('#output');
    expect(korean).not.toContain('\uFFFD');
    expect(korean!.length).toBeGreaterThan(0);
    // A follow-up turn sends the whole conversation; the engine serves the earlier turn from its KV cache.
    await page.fill('#prompt', 'And then?');
    await page.click('#generate');
    await page.waitForSelector('body[data-state="ready"]');
    expect(await page.locator('#transcript li').count()).toBe(4);
    expect(await page.textContent('#transcript li.assistant')).toBe(korean);
    expect(Number(/\((\d+) from the KV cache\)/.exec((await page.textContent('#stats'))!)![1])).toBeGreaterThanOrEqual(16);
    await page.screenshot({ path: fileURLToPath(new URL('../../test-results/demo-korean.png', import.meta.url)) });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('runs q4 weights with seeded sampling when asked (?weights=q4)', async () => {
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${baseUrl}?weights=q4`);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 60_000 });
    expect(await page.textContent('#weights-name')).toBe('q4');
    await page.fill('#prompt', golden.en_plain!.prompt);
    await page.fill('#temperature', '0.8');
    await page.fill('#seed', '7');
    const texts: string[] = [];
    for (let run = 0; run < 2; run++) {
      await page.click('#generate');
      await page.waitForSelector('body[data-state="ready"]');
      texts.push((await page.textContent('#output'))!);
    }
    expect(texts[0]!.length).toBeGreaterThan(0);
    expect(texts[1]).toBe(texts[0]); // the same seed gives the same text
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows a clear message when the browser has no WebGPU', async () => {
    const page = await browser.newPage();
    await page.addInitScript(() => {
      delete (Navigator.prototype as { gpu?: unknown }).gpu;
    });
    await page.goto(baseUrl);
    await page.waitForSelector('body[data-state="error"]');
    expect(await page.textContent('#status')).toMatch(/no WebGPU. Use a recent Chrome or Edge/);
    expect(await page.isDisabled('#generate')).toBe(true);
    await page.close();
  });
});
