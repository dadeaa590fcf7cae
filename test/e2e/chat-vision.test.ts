// The chat app with the bundled vision model (tri-tiny-llava), in the system Chromium: an example
// picture attached and asked about gets HF's golden answer; a picture pasted into the message box and
// one dropped on the composer are attached; a file that is not a picture is refused with a note; the
// picture shows in the conversation and survives a reload (IndexedDB keeps it as a Blob); a follow-up
// question reuses the picture's KV pages. Screenshots (desktop and phone) go to test-results/.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Browser, Page } from 'playwright';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MODELS_DIR } from '../fixtures.ts';
import { ROOT, lastReply, ready, startDemo } from './demo-browser.ts';

const SHOTS = join(ROOT, 'test-results');
const cases: { name: string; image: string; question: string; decoded_text: string }[] = JSON.parse(readFileSync(`${MODELS_DIR}tri-tiny-llava/golden.json`, 'utf8')).cases;
const byName = Object.fromEntries(cases.map((c) => [c.name, c]));

let demo: Awaited<ReturnType<typeof startDemo>>;
let browser: Browser;
let baseUrl: string;

beforeAll(async () => {
  demo = await startDemo();
  ({ browser, baseUrl } = demo);
});

afterAll(() => demo?.close());

async function sendAndWait(page: Page): Promise<string> {
  await page.press('#composer', 'Enter');
  await page.waitForSelector('body[data-state="generating"]');
  await ready(page);
  return lastReply(page);
}

/** Dispatches a paste or drop of a PNG file (the fixture's) on a selector, as the browser would. */
async function transferPicture(page: Page, selector: string, kind: 'paste' | 'drop', file: string, type = 'image/png') {
  const bytes = [...readFileSync(join(MODELS_DIR, 'tri-tiny-llava', file))];
  await page.evaluate(({ selector, kind, bytes, type, name }) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([new Uint8Array(bytes)], name, { type }));
    const target = document.querySelector(selector)!;
    if (kind === 'paste') target.dispatchEvent(new ClipboardEvent('paste', { clipboardData: transfer, bubbles: true, cancelable: true }));
    else {
      target.dispatchEvent(new DragEvent('dragover', { dataTransfer: transfer, bubbles: true, cancelable: true }));
      target.dispatchEvent(new DragEvent('drop', { dataTransfer: transfer, bubbles: true, cancelable: true }));
    }
  }, { selector, kind, bytes, type, name: file.split('/').at(-1)! });
}

describe('chat app with the bundled vision model', () => {
  it('answers questions about example, pasted and dropped pictures with the golden replies; keeps pictures across a reload', async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`${baseUrl}?model=models/tri-tiny-llava/`);
    await ready(page);
    expect(await page.isVisible('#attach')).toBe(true);
    expect(await page.isVisible('#example-pictures')).toBe(true);
    await page.click('#model-button');
    expect(await page.isChecked('input[name="model"][value="vision"]'), 'the Models dialog selects the loaded bundled model').toBe(true);
    await page.keyboard.press('Escape');
    await page.screenshot({ path: join(SHOTS, 'chat-vision-welcome.png') });

    // An example picture: attached with the default question.
    await page.click('.example-picture img[alt="red-circle-0.png"]');
    await page.waitForSelector('#attachments li'); // the picture is fetched first
    expect(await page.locator('#attachments li').count()).toBe(1);
    expect(await page.inputValue('#composer')).toBe('What is in the image?');
    await page.screenshot({ path: join(SHOTS, 'chat-vision-attached.png') });
    expect(await sendAndWait(page)).toBe(byName['red-circle-0']!.decoded_text);
    expect(await page.locator('.message.user .pictures img').count()).toBe(1);
    expect(await page.isVisible('#attachments')).toBe(false);

    // A follow-up about the same picture: its pages come from the cache.
    await page.fill('#composer', 'What colour is it?');
    await sendAndWait(page);
    expect(Number(/(\d+) of \d+ prompt tokens/.exec(await page.locator('.message.assistant .stats').last().innerText())?.[1] ?? 0)).toBeGreaterThanOrEqual(64);

    // Pasted (Korean question) and dropped pictures, each in a new chat.
    await page.click('#new-chat');
    const korean = byName['green-circle-3']!;
    await transferPicture(page, '#composer', 'paste', korean.image);
    await page.fill('#composer', korean.question);
    expect(await sendAndWait(page)).toBe(korean.decoded_text);
    await page.click('#new-chat');
    const resized = byName['black-triangle-5']!; // 96×96: resized like PIL's bicubic
    await transferPicture(page, '#composer-form', 'drop', resized.image);
    await page.fill('#composer', resized.question);
    expect(await sendAndWait(page)).toBe(resized.decoded_text);

    // Not a picture: refused with a note, nothing attached.
    await transferPicture(page, '#composer-form', 'drop', 'config.json', 'application/json');
    expect(await page.locator('#attachments li').count()).toBe(0);
    expect(await page.textContent('#attach-note')).toMatch(/not a picture/);

    // Reload: the conversation and its picture come back from IndexedDB.
    await page.reload();
    await ready(page);
    expect(await page.locator('.message.user .pictures img').count()).toBe(1);
    expect(await page.locator('.message.user .pictures img').evaluate((img: HTMLImageElement) => img.complete && img.naturalWidth)).toBe(96);
    await page.screenshot({ path: join(SHOTS, 'chat-vision-conversation.png') });

    // Phone width: the welcome's pictures and the composer with a picture attached still fit.
    await page.click('#new-chat');
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('.example-picture img[alt="white-square-4.png"]');
    await page.screenshot({ path: join(SHOTS, 'chat-vision-phone.png') });
    await page.click('#language-button');
    expect(await page.textContent('#welcome-text')).toMatch(/비전 모델/);
    expect(await page.textContent('#model-name'), 'the language switch keeps the loaded model\'s name').toBe('tri-tiny-llava');
    await page.screenshot({ path: join(SHOTS, 'chat-vision-phone-ko.png') });
    const box = await page.locator('#attach').boundingBox();
    expect(box!.width).toBeGreaterThanOrEqual(44);
    expect(errors).toEqual([]);
    await context.close();
  });
});
