// The chat app (demo/index.html) as people use it, in the system Chromium (WebGPU on SwiftShader), driven
// by Playwright: the bundled tri-tiny-chat answers "Hello!" and "안녕하세요" with the golden replies of HF
// transformers; Korean typed through an IME (Chromium's own composition events, driven over CDP) sends
// once with no syllable lost or left behind; stop, regenerate, edit and resend, New chat mid-reply; history
// survives a reload; hostile Markdown stays inert; every failure (no WebGPU, no adapter, a missing model,
// a lost GPU) says what to do and the page recovers; the built app works under a sub-path on a static
// server that ignores Range; a phone-width screen keeps 44 px targets. Screenshots go to test-results/.
import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { triTinyChatGolden } from '../fixtures.ts';
import { ROOT, lastReply, ready, startDemo } from './demo-browser.ts';

const SHOTS = join(ROOT, 'test-results');
const golden = Object.fromEntries(triTinyChatGolden().map((c) => [c.name, c.decoded_text]));

let demo: Awaited<ReturnType<typeof startDemo>>;
let browser: Browser;
let baseUrl: string;

beforeAll(async () => {
  demo = await startDemo();
  ({ browser, baseUrl } = demo);
});

afterAll(() => demo?.close());

/** A fresh browser profile (its own IndexedDB and cache) with a page that records script errors. */
async function openApp(url = baseUrl, options: { viewport?: { width: number; height: number }; context?: BrowserContext } = {}) {
  const context = options.context ?? (await browser.newContext({ viewport: options.viewport ?? { width: 1280, height: 800 } }));
  const page = await context.newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  page.on('dialog', (dialog) => void dialog.accept());
  await page.goto(url);
  return { context, page, errors };
}

/** Conversations as stored in IndexedDB (read directly, not through the app). */
function storedConversations(page: Page): Promise<{ id: string; title: string; messages: { role: string; content: string; stopped?: boolean }[] }[]> {
  return page.evaluate(() => new Promise((resolve, reject) => {
    const open = indexedDB.open('tri-webgpu-chat');
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const request = open.result.transaction('conversations').objectStore('conversations').getAll();
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    };
  }));
}

/** Sends the composer's text with a real Enter and waits for the reply to finish. */
async function sendAndWait(page: Page, text: string): Promise<string> {
  await page.fill('#composer', text);
  await page.press('#composer', 'Enter');
  await page.waitForSelector('body[data-state="generating"]');
  await ready(page);
  return lastReply(page);
}

/** Types `syllables` through Chromium's IME path (composition updates over CDP), as a Korean IME does. */
async function composeKorean(page: Page, syllables: string[], finish: 'enter-while-composing' | 'commit-then-enter') {
  const cdp = await page.context().newCDPSession(page);
  await page.focus('#composer');
  let committed = '';
  for (const [index, syllable] of syllables.entries()) {
    await cdp.send('Input.imeSetComposition', { text: syllable, selectionStart: 1, selectionEnd: 1 });
    if (index < syllables.length - 1) {
      await cdp.send('Input.insertText', { text: syllable }); // the next jamo starts a new syllable
      committed += syllable;
    }
  }
  const last = syllables.at(-1)!;
  if (finish === 'enter-while-composing') {
    // What Chromium sends when Enter is pressed mid-syllable: a keydown with keyCode 229 and isComposing,
    // then the IME commits the syllable (compositionend).
    await cdp.send('Input.dispatchKeyEvent', { type: 'rawKeyDown', key: 'Enter', code: 'Enter', windowsVirtualKeyCode: 229, nativeVirtualKeyCode: 229 });
    await cdp.send('Input.insertText', { text: last });
    await cdp.send('Input.dispatchKeyEvent', { type: 'keyUp', key: 'Enter', code: 'Enter', windowsVirtualKeyCode: 13 });
  } else {
    await cdp.send('Input.insertText', { text: last });
    await page.keyboard.press('Enter');
  }
  await cdp.detach();
  return committed + last;
}

describe('chat app', () => {
  it('answers "Hello!" and Korean typed through an IME with the golden replies, streaming, focus kept in the composer', async () => {
    const { context, page, errors } = await openApp();
    await ready(page);
    expect(await page.isVisible('#welcome')).toBe(true);
    expect(await page.textContent('#model-name')).toBe('tri-tiny-chat');
    expect(await page.textContent('#model-format')).toBe(' · f32');

    // The reply streams: sample its length while it grows.
    const lengths: number[] = [];
    const sampler = setInterval(() => {
      page.evaluate(() => document.querySelector('.message.assistant .body')?.textContent?.length ?? 0).then((n) => lengths.push(n), () => {});
    }, 15);
    await page.click('.suggestion:text-is("Hello!")');
    await page.waitForSelector('body[data-state="generating"]');
    await ready(page);
    clearInterval(sampler);
    expect(await lastReply(page)).toBe(golden.hello_en);
    expect(new Set(lengths.filter((n) => n > 0 && n < golden.hello_en!.length)).size).toBeGreaterThan(0);
    expect(await page.locator('.message.assistant .stats').last().textContent()).toMatch(/^\d+ tokens · \d+(\.\d+)? tok\/s · 0 of \d+ prompt tokens from cache$/);
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('composer');
    expect(await page.getAttribute('.message.assistant', 'lang')).toBe('en');
    expect(await page.textContent('#announcer')).toBe('Reply finished.');

    // Shift+Enter is a new line, not a send.
    await page.fill('#composer', 'line one');
    await page.press('#composer', 'Shift+Enter');
    expect(await page.inputValue('#composer')).toBe('line one\n');
    expect(await page.locator('.message').count()).toBe(2);
    await page.fill('#composer', '');

    // New chat, then "안녕하세요" composed syllable by syllable, Enter pressed while "요" is still composing.
    await page.click('#new-chat');
    expect(await page.locator('.message').count()).toBe(0);
    const typed = await composeKorean(page, ['안', '녕', '하', '세', '요'], 'enter-while-composing');
    expect(typed).toBe('안녕하세요');
    await page.waitForSelector('body[data-state="generating"]');
    await ready(page);
    expect(await page.locator('.message.user .body').allTextContents()).toEqual(['안녕하세요']); // sent once, whole
    expect(await page.inputValue('#composer')).toBe(''); // no syllable left behind
    expect(await lastReply(page)).toBe(golden.hello_ko);
    expect(await page.getAttribute('.message.assistant', 'lang')).toBe('ko');

    // A syllable committed first, then one Enter: exactly one more message.
    await page.click('#new-chat');
    await composeKorean(page, ['리', '눅', '스', '는', ' ', '무', '엇', '인', '가', '요', '?'], 'commit-then-enter');
    await page.waitForSelector('body[data-state="generating"]');
    await ready(page);
    expect(await page.locator('.message.user .body').allTextContents()).toEqual(['리눅스는 무엇인가요?']);
    const linux = (await storedConversations(page)).find((conversation) => conversation.messages[0]!.content === '리눅스는 무엇인가요?')!;
    expect(linux.messages[1]!.content.startsWith(golden.linux_ko!)).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'chat-desktop.png') });
    expect(errors).toEqual([]);
    await context.close();
  });

  it('stops a reply (marked), regenerates it, edits and resends, starts a New chat mid-reply with an empty context, and keeps it all after a reload', async () => {
    const { context, page, errors } = await openApp();
    await ready(page);
    // Stop as soon as the first words arrive.
    await page.fill('#composer', 'What is Debian GNU/Linux?');
    await page.press('#composer', 'Enter');
    await page.waitForFunction(() => (document.querySelector('.message.assistant .body')?.textContent ?? '').length > 10 && document.body.dataset.state === 'generating');
    await page.click('#stop');
    await ready(page);
    expect(await page.getAttribute('.message.assistant', 'class')).toContain('stopped');
    expect(await page.textContent('.message.assistant .note')).toBe('Stopped');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('composer');
    const [stopped] = await storedConversations(page);
    expect(stopped!.messages[1]!.stopped).toBe(true);
    const partial = stopped!.messages[1]!.content;

    // Regenerate: the greedy reply in full, of which the stopped one was the start.
    await page.click('.message.assistant button[data-action="regenerate"]');
    await page.waitForSelector('body[data-state="generating"]');
    await ready(page);
    const [regenerated] = await storedConversations(page);
    expect(regenerated!.messages).toHaveLength(2);
    const full = regenerated!.messages[1]!.content;
    expect(full.startsWith(golden.debian_en!)).toBe(true);
    expect(full.startsWith(partial)).toBe(true);
    expect(partial.length).toBeLessThan(full.length);

    // Edit the question and resend: the old reply goes, the new one answers the edited text.
    await page.click('.message.user button[data-action="edit"]');
    await page.fill('.message.user .editor textarea', 'Hello!');
    await page.click('.message.user .editor button.primary');
    await page.waitForSelector('body[data-state="generating"]');
    await ready(page);
    expect(await page.locator('.message').count()).toBe(2);
    expect(await lastReply(page)).toBe(golden.hello_en);

    // New chat while a reply is being written: it stops, the new chat is empty, and its first reply is the
    // same as a first turn's (nothing of the other conversation reaches the model).
    await page.fill('#composer', 'What is Debian GNU/Linux?');
    await page.press('#composer', 'Enter');
    await page.waitForSelector('body[data-state="generating"]');
    await page.click('#new-chat');
    expect(await page.locator('.message').count()).toBe(0);
    expect(await page.isVisible('#welcome')).toBe(true);
    await ready(page);
    expect(await sendAndWait(page, 'Hello!')).toBe(golden.hello_en);
    const stored = await storedConversations(page);
    expect(stored).toHaveLength(2);
    const first = stored.find((conversation) => conversation.title === 'Hello!' && conversation.messages.length === 4)!;
    expect(first.messages.at(-1)!.stopped).toBe(true); // the interrupted reply is kept, marked

    // Reload: the open conversation comes back; the other is one click away in the sidebar.
    await page.reload();
    await ready(page);
    expect(await page.locator('.message').count()).toBe(2);
    expect(await lastReply(page)).toBe(golden.hello_en);
    expect(await page.locator('#conversation-list li').count()).toBe(2);
    await page.locator('#conversation-list li[aria-current="false"] button.open').click();
    expect(await page.locator('.message').count()).toBe(4);
    expect(await page.textContent('.message.assistant.stopped .note')).toBe('Stopped');

    // Rename and delete from the sidebar.
    await page.locator('#conversation-list li[aria-current="true"] button[data-action="rename"]').click();
    await page.fill('#conversation-list input', 'Debian questions');
    await page.press('#conversation-list input', 'Enter');
    expect(await page.locator('#conversation-list li[aria-current="true"] button.open').textContent()).toBe('Debian questions');
    await page.locator('#conversation-list li[aria-current="true"] button[data-action="delete"]').click();
    // The list is redrawn once IndexedDB has deleted it (a beat later on a busy machine).
    await expect.poll(() => page.locator('#conversation-list li').count()).toBe(1);
    expect((await storedConversations(page)).map((conversation) => conversation.title)).toEqual(['Hello!']);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('renders Markdown from the model inertly: no script, no image load, no javascript: link; code highlighted with a copy button', async () => {
    const { context, page, errors } = await openApp();
    await ready(page);
    const requests: string[] = [];
    page.on('request', (request) => requests.push(request.url()));
    const hostile = [
      'Here is **bold** and a [safe link](https://example.com/docs).',
      '<img src="https://tracker.invalid/pixel.png" onerror="window.__pwned = 1">',
      '<script>window.__pwned = 2</script>',
      '[click me](javascript:window.__pwned=3)',
      '![tracking pixel](https://tracker.invalid/p.png)',
      '<a href="https://example.com" onclick="window.__pwned=4">html link</a>',
      '```js\nconst answer = 42; // the answer\n```',
    ].join('\n\n');
    await page.evaluate((content) => new Promise<void>((resolve, reject) => {
      indexedDB.open('tri-webgpu-chat').onsuccess = (event) => {
        const now = Date.now();
        const conversation = {
          id: 'seeded', title: 'Seeded', createdAt: now, updatedAt: now,
          settings: { mode: 'chat', systemPrompt: '', temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, maxTokens: 64, seed: 0 },
          messages: [{ id: 'u1', role: 'user', content: '<img src=x onerror="window.__pwned=5">' }, { id: 'a1', role: 'assistant', content }],
        };
        const request = (event.target as IDBOpenDBRequest).result.transaction('conversations', 'readwrite').objectStore('conversations').put(conversation);
        request.onsuccess = () => resolve();
        request.onerror = () => reject(request.error);
      };
      localStorage.setItem('tri-chat.conversation', 'seeded');
    }), hostile);
    await page.reload();
    await ready(page);
    const reply = page.locator('.message.assistant .body');
    expect(await reply.locator('strong').textContent()).toBe('bold');
    expect(await page.locator('.messages img, .messages script, .messages [onerror], .messages [onclick]').count()).toBe(0);
    expect(await page.evaluate(() => (window as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(await reply.innerText()).toContain('<img src="https://tracker.invalid/pixel.png"'); // shown as text
    expect(await page.locator('.message.user .body').textContent()).toBe('<img src=x onerror="window.__pwned=5">');
    const safe = reply.locator('a', { hasText: 'safe link' });
    expect(await safe.getAttribute('href')).toBe('https://example.com/docs');
    expect(await safe.getAttribute('rel')).toBe('noopener noreferrer');
    expect(await safe.getAttribute('target')).toBe('_blank');
    expect(await reply.locator('a', { hasText: 'click me' }).getAttribute('href')).toBeNull();
    expect(await reply.locator('pre code .hljs-keyword').first().textContent()).toBe('const');
    expect(await reply.locator('pre button.copy-code').count()).toBe(1);
    expect(requests.filter((url) => url.includes('tracker.invalid'))).toEqual([]);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('tells a browser without WebGPU, or without an adapter, what to do, and keeps history readable', async () => {
    for (const [init, title] of [
      [() => void delete (Navigator.prototype as { gpu?: unknown }).gpu, 'This browser has no WebGPU'],
      [() => void (GPU.prototype.requestAdapter = async () => null), 'No GPU is available to WebGPU'],
    ] as const) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.addInitScript(init);
      await page.goto(baseUrl);
      await page.waitForSelector('body[data-state="error"]');
      expect(await page.textContent('#problem-title')).toBe(title);
      expect(await page.isDisabled('#composer')).toBe(true);
      expect(await page.isDisabled('#send')).toBe(true);
      // Saved conversations stay readable.
      await page.evaluate(() => new Promise<void>((resolve) => {
        indexedDB.open('tri-webgpu-chat').onsuccess = (event) => {
          const messages = [{ id: 'u', role: 'user', content: 'Hello!' }, { id: 'a', role: 'assistant', content: 'An **earlier** reply.' }];
          const conversation = { id: 'old', title: 'Hello!', createdAt: 1, updatedAt: 1, settings: {}, messages };
          const request = (event.target as IDBOpenDBRequest).result.transaction('conversations', 'readwrite').objectStore('conversations').put(conversation);
          request.onsuccess = () => resolve();
        };
      }));
      await page.reload();
      await page.waitForSelector('body[data-state="error"]');
      await page.click('#conversation-list button.open');
      expect(await page.locator('.message.assistant .body').innerText()).toBe('An earlier reply.');
      await context.close();
    }
  });

  it('a missing model folder says so with a way forward; the bundled model then loads from the Models dialog, which shows the plan and stored models', async () => {
    const { context, page, errors } = await openApp(`${baseUrl}?model=${encodeURIComponent(new URL('models/no-such-model/', baseUrl).href)}`);
    await page.waitForSelector('body[data-state="error"]', { timeout: 60_000 });
    expect(await page.textContent('#problem-title')).toBe('A model file is missing');
    expect(await page.textContent('#problem-detail')).toMatch(/config\.json/);
    await page.click('#problem-actions button:text-is("Choose another model")');
    expect(await page.isVisible('#model-dialog')).toBe(true);
    await page.check('input[name="model"][value="bundled"]');
    await page.click('#check-model');
    await page.waitForFunction(() => /^Download|won’t fit/.test(document.getElementById('plan')!.textContent ?? ''));
    expect(await page.textContent('#plan')).toMatch(/^Download \d+\.\d MB \(\d+ kB already stored\) · GPU memory \d+\.\d MB/);
    await page.click('#load-model');
    await ready(page);
    expect(await sendAndWait(page, 'Hello!')).toBe(golden.hello_en);
    // The bundled model is now stored in this browser, and can be deleted from the dialog.
    await page.click('#model-button');
    await page.waitForSelector('#cached-models button.danger');
    expect(await page.textContent('#cached-models')).toMatch(/models\/tri-tiny-chat\/ · \d+\.\d MB/);
    await page.screenshot({ path: join(SHOTS, 'chat-models-dialog.png') });
    await page.click('#cached-models button.danger');
    await page.waitForSelector('#cached-models li.muted');
    expect(await page.textContent('#cached-models')).toBe('No models are stored in this browser.');
    // A local folder (read in place): the same model from its files gives the same reply.
    await page.setInputFiles('#folder-input', join(ROOT, 'public/models/tri-tiny-chat'));
    expect(await page.textContent('#drop-hint')).toMatch(/^\d+ files from tri-tiny-chat$/);
    await page.click('#load-model');
    await ready(page);
    expect(await page.textContent('#model-name')).toBe('tri-tiny-chat');
    await page.click('#new-chat');
    expect(await sendAndWait(page, '안녕하세요')).toBe(golden.hello_ko);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('too little GPU memory: the advice offers the 8-bit KV cache, which then fits and answers', async () => {
    // tri-tiny-chat needs 29.5 MB of GPU buffers with its f32 KV cache at 4096 positions, about 24 MB with int8.
    const { context, page, errors } = await openApp(`${baseUrl}?gpuBudgetMB=26`);
    await page.waitForSelector('body[data-state="error"]', { timeout: 60_000 });
    expect(await page.textContent('#problem-title')).toBe('Not enough GPU memory');
    expect(await page.textContent('#problem-detail')).toMatch(/GiB/);
    await page.screenshot({ path: join(SHOTS, 'chat-out-of-memory.png') });
    await page.click('#problem-actions button:text-is("Use 8-bit KV cache")');
    await ready(page);
    expect((await sendAndWait(page, 'Hello!')).length).toBeGreaterThan(0);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('survives a lost GPU: the reply is marked, the banner offers Reload, and the reloaded model answers', async () => {
    const { context, page, errors } = await openApp();
    await ready(page);
    // The GPU process dies mid-reply, as on a driver reset.
    await page.fill('#composer', 'What is Debian GNU/Linux?');
    await page.press('#composer', 'Enter');
    await page.waitForSelector('body[data-state="generating"]');
    const cdp = await browser.newBrowserCDPSession();
    await cdp.send('Browser.crashGpuProcess');
    await page.waitForSelector('body[data-state="error"]', { timeout: 30_000 });
    expect(await page.textContent('#problem-title')).toBe('The GPU stopped working');
    expect(await page.getAttribute('.message.assistant', 'class')).toContain('failed');
    expect(await page.textContent('.message.assistant .note')).toBe('The reply failed: The GPU stopped working');
    expect(await page.isDisabled('#send')).toBe(true);
    await page.screenshot({ path: join(SHOTS, 'chat-device-lost.png') });
    await page.click('#problem-actions button:text-is("Reload model")');
    await ready(page);
    expect(await page.isHidden('#problem')).toBe(true);
    await page.click('#new-chat');
    expect(await sendAndWait(page, 'Hello!')).toBe(golden.hello_en);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('q4 weights (?weights=q4) with seeded sampling from the settings: the same seed regenerates the same reply', async () => {
    const { context, page, errors } = await openApp(`${baseUrl}?weights=q4`);
    await ready(page);
    expect(await page.textContent('#model-format')).toBe(' · q4');
    await page.click('#settings-button');
    await page.fill('#settings-form input[name="temperature"]', '0.8');
    await page.fill('#settings-form input[name="seed"]', '7');
    await page.click('#settings-form button[value="save"]');
    const first = await sendAndWait(page, 'What is Debian GNU/Linux?');
    await page.click('.message.assistant button[data-action="regenerate"]');
    await page.waitForSelector('body[data-state="generating"]');
    await ready(page);
    expect(first.length).toBeGreaterThan(0);
    expect(await lastReply(page)).toBe(first);
    expect((await storedConversations(page))[0]!.messages).toHaveLength(2);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('on a phone (390 px): the reply is in view, every control is at least 44 px, and the sidebar opens over the page', async () => {
    const { context, page, errors } = await openApp(baseUrl, { viewport: { width: 390, height: 844 } });
    await ready(page);
    await page.screenshot({ path: join(SHOTS, 'chat-phone-welcome.png') });
    expect(await sendAndWait(page, '안녕하세요')).toBe(golden.hello_ko);
    const box = (await page.locator('.message.assistant .body').boundingBox())!;
    expect(box.y + box.height).toBeLessThanOrEqual(844);
    expect(box.x + box.width).toBeLessThanOrEqual(390);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390); // no sideways scroll
    const small = await page.evaluate(() => [...document.querySelectorAll<HTMLElement>('button, textarea, input, select, a')]
      .filter((element) => element.checkVisibility())
      .map((element) => ({ element: element.id || element.className || element.textContent, ...element.getBoundingClientRect().toJSON() }))
      .filter(({ width, height }) => width < 44 || height < 44));
    expect(small).toEqual([]);
    await page.screenshot({ path: join(SHOTS, 'chat-phone.png') });
    await page.click('#theme-button');
    await page.click('#language-button');
    expect(await page.getAttribute('html', 'data-theme')).toBe('dark');
    expect(await page.getAttribute('html', 'lang')).toBe('ko');
    await page.click('#open-sidebar');
    await page.waitForFunction(() => document.getElementById('sidebar')!.getBoundingClientRect().left >= 0);
    expect(await page.locator('#conversation-list li').count()).toBe(1);
    expect(await page.textContent('#new-chat')).toBe('새 대화');
    await page.screenshot({ path: join(SHOTS, 'chat-phone-sidebar-dark-ko.png') });
    await page.click('#conversation-list button.open');
    expect(await page.locator('.message.assistant .speaker').textContent()).toBe('어시스턴트');
    expect(errors).toEqual([]);
    await context.close();
  });
});

describe('the built chat app', () => {
  let outDir: string;
  let staticServer: Server;
  let appUrl: string;
  let stall: Promise<void> = Promise.resolve();
  beforeAll(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'tri-chat-build-'));
    execFileSync('npx', ['vite', 'build', '--outDir', outDir, '--logLevel', 'warn'], { cwd: ROOT, stdio: 'pipe' });
    // A plain static server under /sub/path/ that ignores Range (always 200, the whole file), as many do.
    const types: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.json': 'application/json' };
    staticServer = createHttpServer(async (request, response) => {
      const path = decodeURIComponent(new URL(request.url!, 'http://x').pathname);
      // While `stall` is set, weight files wait (a slow link), so a test can cancel a load midway.
      if (path.endsWith('.safetensors')) await stall;
      if (!path.startsWith('/sub/path/')) return void response.writeHead(404).end();
      let file = normalize(join(outDir, path.slice('/sub/path/'.length)));
      if (file.endsWith('/') || (existsSync(file) && statSync(file).isDirectory())) file = join(file, 'index.html');
      if (!file.startsWith(outDir) || !existsSync(file)) return void response.writeHead(404).end();
      response.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'content-length': statSync(file).size });
      createReadStream(file).pipe(response);
    });
    await new Promise<void>((resolve) => staticServer.listen(0, '127.0.0.1', resolve));
    const address = staticServer.address() as { port: number };
    appUrl = `http://127.0.0.1:${address.port}/sub/path/`;
  }, 120_000);
  afterAll(() => {
    staticServer?.close();
    if (outDir) rmSync(outDir, { recursive: true, force: true });
  });

  it('runs from a sub-path on a static server without Range support', async () => {
    const { context, page, errors } = await openApp(appUrl);
    await ready(page);
    expect(await sendAndWait(page, 'Hello!')).toBe(golden.hello_en);
    expect(errors).toEqual([]);
    await context.close();
  });

  it('cancels a load that is waiting on the network, says so, and loads on "Try again"', async () => {
    let release: () => void = () => {};
    stall = new Promise((resolve) => (release = resolve));
    const { context, page, errors } = await openApp(appUrl);
    await page.waitForSelector('body[data-state="loading"] #load-panel:not([hidden])');
    await page.waitForTimeout(500);
    await page.click('#cancel-load');
    await page.waitForSelector('body[data-state="error"]');
    expect(await page.textContent('#problem-title')).toBe('Loading was cancelled. The previous model is no longer loaded.');
    expect(await page.isHidden('#load-panel')).toBe(true);
    release();
    stall = Promise.resolve();
    await page.click('#problem-actions button:text-is("Try again")');
    await ready(page);
    expect(await sendAndWait(page, 'Hello!')).toBe(golden.hello_en);
    expect(errors).toEqual([]);
    await context.close();
  });
});
