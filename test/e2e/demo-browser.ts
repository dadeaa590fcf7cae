// The demo served by Vite's dev server and the system Chromium (WebGPU on SwiftShader), for the tests
// that use the chat app as a person does.
import { fileURLToPath } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright';
import { type ViteDevServer, createServer } from 'vite';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from '../chromium.ts';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export async function startDemo(): Promise<{ baseUrl: string; browser: Browser; close: () => Promise<void> }> {
  const server: ViteDevServer = await createServer({ configFile: `${ROOT}vite.config.ts`, server: { port: 0, host: '127.0.0.1' }, logLevel: 'warn' });
  await server.listen();
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS, headless: true });
  return {
    baseUrl: server.resolvedUrls!.local[0]!,
    browser,
    close: async () => {
      await browser.close();
      await server.close();
    },
  };
}

/** The chat app is ready for a message (a model loaded, no reply running). */
export const ready = (page: Page) => page.waitForSelector('body[data-state="ready"]', { timeout: 90_000 });

/** The text of the last reply, as rendered. */
export const lastReply = (page: Page) => page.locator('.message.assistant .body').last().innerText();
