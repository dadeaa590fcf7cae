// Artifact shards in OPFS (src/model/opfs-store.ts), in Chromium: the first load stores each verified
// shard, the next one fetches none, a shard cut off midway resumes from its stored bytes, a corrupted
// stored shard fails its SHA-256, is dropped and fetched again (healed), and the storage helpers see it.
import { describe, expect, inject, it } from 'vitest';
import { TriEngine, clearModelCache, deleteCachedModel, listCachedModels } from '../../src/index.ts';
import { rangeRequests } from './range-requests.ts';

const modelUrl = (name: string) => new URL(`${inject('modelsUrl')}${name}/`, location.origin).href;
const artifactUrl = new URL(inject('artifactUrl'), location.origin).href;
/** The Range headers of the shard requests the page sends while `action` runs. */
const shardRanges = (action: () => Promise<void>) => rangeRequests(action, (url) => /weights-\d+\.bin/.test(url));

async function storedShard(): Promise<FileSystemFileHandle> {
  const root = await (await navigator.storage.getDirectory()).getDirectoryHandle('tri-webgpu-models');
  const folder = await root.getDirectoryHandle(encodeURIComponent(artifactUrl));
  for await (const [name, handle] of (folder as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
    if (name.startsWith('weights-00001.bin@')) return handle as FileSystemFileHandle;
  }
  throw new Error('no stored shard');
}

describe('artifact shards in OPFS', () => {
  it('stores verified shards, serves the next load from them, resumes a cut-off shard and heals a corrupt one', async () => {
    await clearModelCache();
    const golden = (await (await fetch(`${modelUrl('tri-tiny')}golden.json`)).json()).prompts.find((c: { name: string }) => c.name === 'en_plain');
    const manifest = await (await fetch(`${artifactUrl}tri-webgpu-manifest.json`)).json();
    const shardBytes = manifest.shards[0].bytes as number;
    const loadAndCheck = async () => {
      const engine = await TriEngine.load(artifactUrl);
      try {
        expect(engine.weights).toEqual({ format: 'f32' });
        expect((await engine.complete(golden.prompt, { maxNewTokens: 48 })).tokenIds).toEqual(golden.greedy_ids);
      } finally {
        engine.dispose();
      }
    };

    const first = await shardRanges(loadAndCheck);
    expect(first.length).toBeGreaterThan(0);
    expect((await (await storedShard()).getFile()).size).toBe(shardBytes);
    expect(await shardRanges(loadAndCheck), 'the second load reads its shards from OPFS').toEqual([]);

    // Cut off midway (a closed tab): the next load fetches only the missing bytes.
    const half = Math.floor(shardBytes / 2 / 4) * 4;
    const writable = await (await storedShard()).createWritable({ keepExistingData: true });
    await writable.truncate(half);
    await writable.close();
    expect(await shardRanges(loadAndCheck)).toEqual([`bytes=${half}-${shardBytes - 1}`]);
    expect((await (await storedShard()).getFile()).size).toBe(shardBytes);

    // Corrupted on disk: the hash fails, the stored copy is dropped and the shard downloaded again.
    const corrupt = await (await storedShard()).createWritable({ keepExistingData: true });
    await corrupt.write({ type: 'write', position: 1000, data: new Uint8Array(64).fill(0x55) });
    await corrupt.close();
    expect(await shardRanges(loadAndCheck)).toEqual([`bytes=0-${shardBytes - 1}`]);
    expect(await shardRanges(loadAndCheck)).toEqual([]);

    const listed = await listCachedModels();
    expect(listed.find((model) => model.location === artifactUrl)?.bytes).toBeGreaterThanOrEqual(shardBytes);
    await deleteCachedModel(artifactUrl);
    expect(await listCachedModels()).toEqual([]);
  });
});
