// Pre-converted artifacts (src/model/artifact.ts, FORMAT.md) in Node: the CPU converter writes exactly
// the buffers the GPU conversion fills (both fixtures, every format), an artifact loads with the golden
// ids (f32) and the same q4 ids as converting at load, and a corrupt, cut or foreign artifact is refused
// with a typed error after one retry of the shard.
import { beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError, ModelIntegrityError, TriEngine, UnsupportedModelError } from '../../src/index.ts';
import { GpuContext } from '../../src/gpu/context.ts';
import { type ArtifactManifest, type ArtifactSink, MANIFEST_FILE, convertModel } from '../../src/model/artifact.ts';
import { BlobModelFiles } from '../../src/model/byte-source.ts';
import { GpuWeightUploader, destroyGpuMatrix } from '../../src/model/gpu-weights.ts';
import { graphMatrices } from '../../src/model/llama-gpu.ts';
import { openModel } from '../../src/model/open.ts';
import type { WeightFormatOptions } from '../../src/model/quant.ts';
import { NodeModelFiles, getNodeGpu } from '../../src/node.ts';
import { modelDir, storiesGolden, triTinyGolden } from '../fixtures.ts';

/** Converts a fixture into memory; returns the artifact's files and manifest. */
async function convertFixture(name: 'stories260k' | 'tri-tiny', weights: WeightFormatOptions) {
  const files = new NodeModelFiles(modelDir(name));
  const { spec, checkpoint } = await openModel(files);
  const written = new Map<string, Uint8Array[]>();
  const sink: ArtifactSink = {
    async create(file) {
      const chunks: Uint8Array[] = [];
      written.set(file, chunks);
      return { write: async (bytes) => void chunks.push(bytes.slice()), close: async () => {} };
    },
  };
  const manifest = await convertModel(files, checkpoint, graphMatrices(spec), sink, { weights });
  const bytes = new Map([...written].map(([file, chunks]) => [file, new Uint8Array(Buffer.concat(chunks))]));
  return { spec, checkpoint, manifest, bytes, files: (replace: Record<string, Uint8Array> = {}) => new BlobModelFiles(new Map([...bytes].map(([file, data]) => [file, new Blob([(replace[file] ?? data) as Uint8Array<ArrayBuffer>])]))) };
}

const FORMATS: [string, WeightFormatOptions][] = [
  ['f32', { format: 'f32' }], ['f16', { format: 'f16' }], ['q4 G=32', { format: 'q4', groupSize: 32 }], ['q4 G=64 with min', { format: 'q4', groupSize: 64, withMin: true }],
];

let gpu: GpuContext;
beforeAll(async () => {
  gpu = await GpuContext.create(await getNodeGpu());
});

describe('converter = GPU conversion, bit for bit', () => {
  for (const name of ['stories260k', 'tri-tiny'] as const) {
    for (const [label, weights] of FORMATS) {
      it(`${name}, ${label}: every matrix part equals the GPU-converted buffer`, async () => {
        const { spec, checkpoint, manifest, bytes } = await convertFixture(name, weights);
        const uploader = new GpuWeightUploader(gpu);
        let compared = 0;
        for (const [m, matrix] of graphMatrices(spec).entries()) {
          const pending = uploader.allocate(matrix, checkpoint, weights);
          await uploader.fill(pending);
          const entry = manifest.matrices[m]!;
          expect(entry.label).toBe(matrix.label);
          expect(entry.parts).toHaveLength(pending.matrix.parts.length);
          for (const [i, part] of pending.matrix.parts.entries()) {
            const stored = entry.parts[i]!;
            const shard = bytes.get(manifest.shards[stored.data.shard]!.file)!;
            const gpuData = new Uint8Array(await gpu.readBack(part.data, part.layout.dataBytes));
            expect(Buffer.compare(gpuData, shard.subarray(stored.data.offset, stored.data.offset + stored.data.bytes)), `${matrix.label}[${i}] data`).toBe(0);
            if (stored.scales) {
              const gpuScales = new Uint8Array(await gpu.readBack(part.scales, part.layout.scaleBytes));
              expect(Buffer.compare(gpuScales, shard.subarray(stored.scales.offset, stored.scales.offset + stored.scales.bytes)), `${matrix.label}[${i}] scales`).toBe(0);
            }
            compared++;
          }
          destroyGpuMatrix(pending.matrix);
        }
        uploader.finish();
        expect(compared).toBe(manifest.matrices.reduce((sum, matrix) => sum + matrix.parts.length, 0));
      });
    }
  }
});

describe('loading an artifact', () => {
  it('reproduces every golden of both fixtures in f32', async () => {
    const stories = await convertFixture('stories260k', { format: 'f32' });
    const storiesEngine = await TriEngine.load(stories.files(), { gpu: await getNodeGpu() });
    for (const c of storiesGolden()) {
      expect((await storiesEngine.complete({ tokenIds: c.prompt_ids }, { maxNewTokens: c.generated_ids.length })).tokenIds).toEqual(c.generated_ids);
    }
    storiesEngine.dispose();
    const tri = await convertFixture('tri-tiny', { format: 'f32' });
    const progress: number[] = [];
    const converting = new Set<boolean>();
    const triEngine = await TriEngine.load(tri.files(), { gpu: await getNodeGpu(), onProgress: (p) => (progress.push(p.loadedBytes), converting.add(p.converting)) });
    expect(progress.at(-1)).toBe(tri.manifest.shards.reduce((sum, shard) => sum + shard.bytes, 0));
    expect([...converting]).toEqual([false]); // an artifact's weights are uploaded as they are
    for (const c of triTinyGolden()) {
      expect((await triEngine.complete({ tokenIds: c.prompt_ids }, { maxNewTokens: c.greedy_ids.length })).tokenIds, c.name).toEqual(c.greedy_ids);
    }
    triEngine.dispose();
  });

  it('q4: the same ids as converting the checkpoint at load, at about a quarter of the bytes', async () => {
    const weights: WeightFormatOptions = { format: 'q4', groupSize: 32 };
    const tri = await convertFixture('tri-tiny', weights);
    const fromArtifact = await TriEngine.load(tri.files(), { gpu: await getNodeGpu() });
    const fromCheckpoint = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu(), weights });
    expect(fromArtifact.weights).toEqual(weights);
    for (const c of triTinyGolden()) {
      const a = await fromArtifact.complete({ tokenIds: c.prompt_ids }, { maxNewTokens: 24 });
      const b = await fromCheckpoint.complete({ tokenIds: c.prompt_ids }, { maxNewTokens: 24 });
      expect(a.tokenIds, c.name).toEqual(b.tokenIds);
    }
    const artifactBytes = tri.manifest.shards.reduce((sum, shard) => sum + shard.bytes, 0);
    const checkpointBytes = [...tri.checkpoint.tensors.values()].reduce((sum, info) => sum + info.byteLength, 0);
    console.log(`tri-tiny q4 artifact: ${artifactBytes} bytes, checkpoint (bf16): ${checkpointBytes} bytes (${(artifactBytes / checkpointBytes).toFixed(3)})`);
    expect(artifactBytes / checkpointBytes).toBeLessThan(0.35);
    await expect(TriEngine.load(tri.files(), { gpu: await getNodeGpu(), weights: { format: 'f16' } })).rejects.toBeInstanceOf(InvalidRequestError);
    fromArtifact.dispose();
    fromCheckpoint.dispose();
  });

  it('refuses a corrupted or cut shard (after one retry) and a manifest that does not fit the model, with typed errors', async () => {
    const tri = await convertFixture('tri-tiny', { format: 'q4' });
    const shardFile = tri.manifest.shards[0]!.file;
    const corrupt = tri.bytes.get(shardFile)!.slice();
    corrupt[1234] = corrupt[1234]! ^ 0xff;
    const error = await TriEngine.load(tri.files({ [shardFile]: corrupt }), { gpu: await getNodeGpu() }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelIntegrityError);
    expect((error as Error).message).toMatch(new RegExp(`${shardFile}: SHA-256 [0-9a-f]{64} does not match`));
    const cut = await TriEngine.load(tri.files({ [shardFile]: tri.bytes.get(shardFile)!.slice(0, 1000) }), { gpu: await getNodeGpu() }).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(ModelIntegrityError);
    expect((cut as Error).message).toMatch(/is 1000 bytes, but the manifest says/);

    // A manifest from another model (stories260k's) beside tri-tiny's config: refused before any weight moves.
    const stories = await convertFixture('stories260k', { format: 'q4' });
    const foreign = await TriEngine.load(tri.files({ [MANIFEST_FILE]: stories.bytes.get(MANIFEST_FILE)! }), { gpu: await getNodeGpu() }).catch((e: unknown) => e);
    expect(foreign).toBeInstanceOf(UnsupportedModelError);
    const manifest = JSON.parse(new TextDecoder().decode(tri.bytes.get(MANIFEST_FILE)!)) as ArtifactManifest;
    const future = new TextEncoder().encode(JSON.stringify({ ...manifest, version: 99 }));
    await expect(TriEngine.load(tri.files({ [MANIFEST_FILE]: future }), { gpu: await getNodeGpu() })).rejects.toThrow(/version 99 is not supported/);
    const outside = structuredClone(manifest);
    outside.matrices[0]!.parts[0]!.data.offset = manifest.shards[0]!.bytes;
    await expect(TriEngine.load(tri.files({ [MANIFEST_FILE]: new TextEncoder().encode(JSON.stringify(outside)) }), { gpu: await getNodeGpu() })).rejects.toThrow(/points outside its shard/);
  });
});
