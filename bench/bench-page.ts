// Runs the benchmark page (demo/bench.html) in the system Chromium through the Vite dev server and
// returns its tables as Markdown: how `npm run bench` measures the browser next to Node.
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright';
import { createServer } from 'vite';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../test/chromium.ts';

export async function benchPageReport(query: string, tables: string[]): Promise<string> {
  const server = await createServer({ configFile: fileURLToPath(new URL('../vite.config.ts', import.meta.url)), server: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
  await server.listen();
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS, headless: true });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.resolvedUrls!.local[0]}bench.html?${query}`);
    await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 60 * 60_000 });
    return await page.evaluate((ids) => {
      const rows = (id: string) => [...document.querySelectorAll(`#${id} tr`)].map((tr) => `| ${[...tr.children].map((cell) => cell.textContent).join(' | ')} |`);
      return [document.getElementById('status')!.textContent, document.getElementById('adapter')!.textContent, ...ids.flatMap((id) => ['', ...rows(id)])].join('\n');
    }, tables);
  } finally {
    await browser.close();
    await server.close();
  }
}
