// Downloaded model bytes kept in the browser's Cache API: a second load reads no weight byte from the
// network and still reproduces the goldens; clearing the cache brings the downloads back.
import { describe, expect, inject, it } from 'vitest';
import { rangeRequests } from './range-requests.ts';
import { CachedModelFiles, HttpModelFiles, MODEL_CACHE_NAME, StorageQuotaError, TriEngine, clearModelCache, deleteCachedModel, listCachedModels } from '../../src/index.ts';

const modelUrl = (name: string) => new URL(`${inject('modelsUrl')}${name}/`, location.origin).href;
/** Counts the ranged GETs (file bytes) the page sends while `action` runs. */
const countRangeRequests = async (action: () => Promise<void>) => (await rangeRequests(action)).length;

describe('model byte cache (Cache API)', () => {
  it('serves a second load from the cache, with the same golden ids', async () => {
    await clearModelCache();
    const golden = (await (await fetch(`${modelUrl('tri-tiny')}golden.json`)).json()).prompts.find((c: { name: string }) => c.name === 'en_plain');
    let phases = new Set<string>();
    const loadAndCheck = async () => {
      const files = await CachedModelFiles.open(new HttpModelFiles(modelUrl('tri-tiny')));
      expect(files).toBeInstanceOf(CachedModelFiles);
      phases = new Set();
      const engine = await TriEngine.load(files, { weights: { format: 'f32' }, keepConverted: false, onProgress: ({ phase }) => phases.add(phase) });
      try {
        expect((await engine.complete(golden.prompt, { maxNewTokens: 48 })).tokenIds).toEqual(golden.greedy_ids);
      } finally {
        engine.dispose();
      }
      return (files as CachedModelFiles).stats;
    };
    let first = { hits: 0, misses: 0, storeFailures: 0, corrupt: 0 };
    const firstRequests = await countRangeRequests(async () => {
      first = await loadAndCheck();
    });
    expect(first.hits).toBe(0);
    expect(first.misses).toBeGreaterThan(3);
    expect(first.storeFailures).toBe(0);
    expect(firstRequests).toBe(first.misses);
    expect(phases.has('download') && phases.has('prepare')).toBe(true); // the progress says where the bytes come from

    let second = { hits: 0, misses: 0, storeFailures: 0, corrupt: 0 };
    const secondRequests = await countRangeRequests(async () => {
      second = await loadAndCheck();
    });
    expect(second).toEqual({ hits: first.misses, misses: 0, storeFailures: 0, corrupt: 0 });
    expect(secondRequests).toBe(0);
    expect([...phases]).toEqual(['read', 'prepare']);

    expect(await clearModelCache()).toBe(true);
    const afterClear = await countRangeRequests(async () => {
      await loadAndCheck();
    });
    expect(afterClear).toBe(first.misses);
  });

  it('drops a corrupted cached range (same length, other bytes) and downloads it again: the goldens hold', async () => {
    await clearModelCache();
    const golden = (await (await fetch(`${modelUrl('tri-tiny')}golden.json`)).json()).prompts.find((c: { name: string }) => c.name === 'en_plain');
    const load = async () => {
      const files = (await CachedModelFiles.open(new HttpModelFiles(modelUrl('tri-tiny')))) as CachedModelFiles;
      const engine = await TriEngine.load(files, { weights: { format: 'f32' }, keepConverted: false });
      const result = await engine.complete(golden.prompt, { maxNewTokens: 48 });
      engine.dispose();
      return { ids: result.tokenIds, stats: files.stats };
    };
    await load();
    // Corrupt the biggest cached entry: flip bytes, keep its length and its stored digest header.
    const cache = await caches.open(MODEL_CACHE_NAME);
    let biggest: { key: Request; response: Response; bytes: Uint8Array } | undefined;
    for (const key of await cache.keys()) {
      const response = (await cache.match(key))!;
      const bytes = new Uint8Array(await response.clone().arrayBuffer());
      if (!biggest || bytes.length > biggest.bytes.length) biggest = { key, response, bytes };
    }
    const corrupted = biggest!.bytes.slice();
    for (let i = 0; i < corrupted.length; i += 97) corrupted[i] = corrupted[i]! ^ 0x5a;
    await cache.put(biggest!.key, new Response(corrupted, { headers: biggest!.response.headers }));

    const healed = await load();
    expect(healed.ids).toEqual(golden.greedy_ids);
    expect(healed.stats.corrupt).toBe(1);
    expect(healed.stats.misses).toBe(1);
    const again = await load();
    expect(again.stats).toMatchObject({ corrupt: 0, misses: 0 });
  });

  it('plans with the cached bytes, lists and deletes cached models, and refuses a download the quota cannot hold', async () => {
    await clearModelCache();
    const url = modelUrl('tri-tiny');
    const before = await TriEngine.plan(url, { weights: { format: 'f32' } });
    expect(before).toMatchObject({ kind: 'checkpoint', fits: true });
    expect(before.cachedBytes, 'only the small files the plan read').toBeLessThan(before.downloadBytes / 10);
    expect(before.storage?.quota).toBeGreaterThan(0);
    (await TriEngine.load(url, { weights: { format: 'f32' } })).dispose();
    const after = await TriEngine.plan(url, { weights: { format: 'f32' } });
    // Every weight byte is cached now (plus the small files the plan itself read).
    expect(after.cachedBytes).toBeGreaterThanOrEqual(after.downloadBytes);
    const listed = await listCachedModels();
    expect(listed).toEqual([expect.objectContaining({ location: url, bytes: after.cachedBytes })]);
    expect(await deleteCachedModel(url)).toBe(listed[0]!.entries);
    expect(await listCachedModels()).toEqual([]);

    // A quota smaller than the download: refused before any weight byte is fetched.
    const estimate = navigator.storage.estimate;
    navigator.storage.estimate = async () => ({ usage: 0, quota: 1_000_000 });
    try {
      const plan = await TriEngine.plan(url);
      expect(plan.fits).toBe(false);
      expect(plan.reasons.join(' ')).toMatch(/browser storage/);
      let error: unknown;
      const weightRequests = await rangeRequests(async () => {
        error = await TriEngine.load(url).catch((e: unknown) => e);
      }, (file) => /safetensors/.test(file));
      expect(error).toBeInstanceOf(StorageQuotaError);
      expect(weightRequests.length, 'at most the two shards\' headers were read (length, then JSON)').toBeLessThanOrEqual(4);
      const uncached = await TriEngine.load(url, { cache: false, weights: { format: 'f32' } });
      expect(uncached.contextLength).toBeGreaterThan(0);
      uncached.dispose();
    } finally {
      navigator.storage.estimate = estimate;
    }
  });
});
