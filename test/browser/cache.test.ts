// Downloaded model bytes kept in the browser's Cache API: a second load reads no weight byte from the
// network and still reproduces the goldens; clearing the cache brings the downloads back.
import { afterEach, describe, expect, inject, it } from 'vitest';
import { CachedModelFiles, HttpModelFiles, TriEngine, clearModelCache } from '../../src/index.ts';

const modelUrl = (name: string) => new URL(`${inject('modelsUrl')}${name}/`, location.origin).href;
const realFetch = globalThis.fetch;

afterEach(() => {
  globalThis.fetch = realFetch;
});

/** Counts the ranged GETs (file bytes) the page sends while `action` runs. */
async function countRangeRequests(action: () => Promise<void>): Promise<number> {
  let count = 0;
  globalThis.fetch = (input, init) => {
    if (new Headers(init?.headers).has('range')) count++;
    return realFetch(input, init);
  };
  try {
    await action();
  } finally {
    globalThis.fetch = realFetch;
  }
  return count;
}

describe('model byte cache (Cache API)', () => {
  it('serves a second load from the cache, with the same golden ids', async () => {
    await clearModelCache();
    const golden = (await (await fetch(`${modelUrl('tri-tiny')}golden.json`)).json()).prompts.find((c: { name: string }) => c.name === 'en_plain');
    const loadAndCheck = async () => {
      const files = await CachedModelFiles.open(new HttpModelFiles(modelUrl('tri-tiny')));
      expect(files).toBeInstanceOf(CachedModelFiles);
      const engine = await TriEngine.load(files, { weights: { format: 'f32' } });
      try {
        expect((await engine.complete(golden.prompt, { maxNewTokens: 48 })).tokenIds).toEqual(golden.greedy_ids);
      } finally {
        engine.dispose();
      }
      return (files as CachedModelFiles).stats;
    };
    let first = { hits: 0, misses: 0, storeFailures: 0 };
    const firstRequests = await countRangeRequests(async () => {
      first = await loadAndCheck();
    });
    expect(first.hits).toBe(0);
    expect(first.misses).toBeGreaterThan(3);
    expect(first.storeFailures).toBe(0);
    expect(firstRequests).toBe(first.misses);

    let second = { hits: 0, misses: 0, storeFailures: 0 };
    const secondRequests = await countRangeRequests(async () => {
      second = await loadAndCheck();
    });
    expect(second).toEqual({ hits: first.misses, misses: 0, storeFailures: 0 });
    expect(secondRequests).toBe(0);

    expect(await clearModelCache()).toBe(true);
    const afterClear = await countRangeRequests(async () => {
      await loadAndCheck();
    });
    expect(afterClear).toBe(first.misses);
  });
});
