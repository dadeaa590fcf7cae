// The pre-converted model artifact (FORMAT.md): our GPU weight buffers, exactly as the GPU conversion
// of the checkpoint would fill them, in shards of at most 128 MiB with a JSON manifest that lists every
// matrix part and each shard's size and SHA-256. A user downloads ~4.5 bits per weight instead of 16 and
// nothing is converted at load. Written by convertModel (the CPU quantizer is bit-identical to
// kernels/quantize.wgsl), read by ArtifactWeights, which verifies each shard's hash while it streams.
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { InvalidRequestError, ModelFileMissingError, ModelIntegrityError, SafetensorsFormatError, UnsupportedModelError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import { type GpuMatrix, type GpuMatrixPart, placeholderBuffer } from '../ops/linear.ts';
import { type ByteSource, type ModelFiles, readJsonIfPresent } from './byte-source.ts';
import { MATRIX_PART_BYTES, type MatrixSpec, type PartPlan, planMatrix, tensorShapes } from './gpu-weights.ts';
import { type PackedWeights, type WeightFormatOptions, type WeightLayout, packRows } from './quant.ts';
import { type SafetensorsCheckpoint, type TensorInfo, readTensorRows, tensorToFloat32 } from './safetensors.ts';

export const MANIFEST_FILE = 'tri-webgpu-manifest.json';
export const ARTIFACT_FORMAT = 'tri-webgpu-artifact';
export const ARTIFACT_VERSION = 1;
/** Matrices are cut into parts of at most this many bytes (by rows; as at load, see MATRIX_PART_BYTES); a shard holds whole parts. */
export const ARTIFACT_PART_BYTES = MATRIX_PART_BYTES;
const SHARD_BYTES = 128 * 2 ** 20;
/** Bytes read (and hashed) per request; bounds JS memory while streaming a shard. */
const READ_CHUNK_BYTES = 32 * 2 ** 20;
/** Files beside the weights that the loader reads (the ones present are copied). */
const METADATA_FILES = ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'chat_template.jinja', 'special_tokens_map.json'];

export interface ArtifactRegion {
  shard: number;
  offset: number;
  bytes: number;
}

export interface ArtifactPart {
  outputStart: number;
  outputs: number;
  layout: WeightLayout;
  data: ArtifactRegion;
  scales?: ArtifactRegion;
}

export interface ArtifactMatrix {
  label: string;
  tensors: string[];
  gatedPair: boolean;
  layout: WeightLayout;
  parts: ArtifactPart[];
}

export interface ArtifactManifest {
  format: typeof ARTIFACT_FORMAT;
  version: number;
  weights: WeightFormatOptions;
  partBytes: number;
  /** What it was converted from: SHA-256 of config.json and of the checkpoint's tensor table. */
  source: { configSha256: string; tensorsSha256: string };
  matrices: ArtifactMatrix[];
  shards: { file: string; bytes: number; sha256: string }[];
}

/** Where convertModel writes: one file at a time, appended to, then closed. */
export interface ArtifactSink {
  create(file: string): Promise<{ write(bytes: Uint8Array): Promise<void>; close(): Promise<void> }>;
}

export interface ConvertOptions {
  weights: WeightFormatOptions;
  /** Called after each chunk with checkpoint bytes read so far and in all. */
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** The checkpoint's tensor table, digested: an artifact names the exact checkpoint it came from. */
function tensorsDigest(checkpoint: SafetensorsCheckpoint): string {
  const table = [...checkpoint.tensors].sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, info]) => [name, info.dtype, info.shape, info.byteLength]);
  return bytesToHex(sha256(new TextEncoder().encode(JSON.stringify(table))));
}

/** What an artifact was converted from: SHA-256 of config.json and of the checkpoint's tensor table. */
export async function artifactSource(files: ModelFiles, checkpoint: SafetensorsCheckpoint, signal?: AbortSignal): Promise<ArtifactManifest['source']> {
  return { configSha256: bytesToHex(sha256(await readBytes(files, 'config.json', signal))), tensorsSha256: tensorsDigest(checkpoint) };
}

/**
 * Writes parts into shards of at most 128 MiB (a part is never split between shards), hashing each
 * shard as it goes, then the manifest. Parts arrive one at a time: memory holds only the current one.
 */
export class ArtifactWriter {
  private readonly sink: ArtifactSink;
  private readonly shards: ArtifactManifest['shards'] = [];
  private readonly matrices: ArtifactMatrix[] = [];
  private shard: { file: string; bytes: number; hash: ReturnType<typeof sha256.create>; out: Awaited<ReturnType<ArtifactSink['create']>> } | undefined;

  constructor(sink: ArtifactSink) {
    this.sink = sink;
  }

  /** Appends one matrix, part by part, in plan order; `pack` gives a part's buffers. */
  async addMatrix(spec: MatrixSpec, plan: { layout: WeightLayout; parts: PartPlan[] }, pack: (part: PartPlan, index: number) => Promise<PackedWeights>): Promise<void> {
    const parts: ArtifactPart[] = [];
    for (const [index, part] of plan.parts.entries()) {
      const packed = await pack(part, index);
      const partBytes = packed.layout.dataBytes + packed.layout.scaleBytes;
      if (this.shard && this.shard.bytes + partBytes > SHARD_BYTES) await this.closeShard();
      const data = await this.append(new Uint8Array(packed.data.buffer, packed.data.byteOffset, packed.layout.dataBytes));
      const scales = packed.layout.scaleBytes ? await this.append(new Uint8Array(packed.scales.buffer, packed.scales.byteOffset, packed.layout.scaleBytes)) : undefined;
      parts.push({ outputStart: part.outputStart, outputs: part.outputs, layout: part.layout, data, ...(scales ? { scales } : {}) });
    }
    this.matrices.push({ label: spec.label, tensors: [...spec.tensors], gatedPair: spec.gatedPair ?? false, layout: plan.layout, parts });
  }

  /** Closes the last shard and writes the manifest (last: a folder without one is incomplete). */
  async finish(weights: WeightFormatOptions, source: ArtifactManifest['source']): Promise<ArtifactManifest> {
    await this.closeShard();
    const manifest: ArtifactManifest = {
      format: ARTIFACT_FORMAT, version: ARTIFACT_VERSION, weights, partBytes: ARTIFACT_PART_BYTES, source, matrices: this.matrices, shards: this.shards,
    };
    await writeWhole(this.sink, MANIFEST_FILE, new TextEncoder().encode(`${JSON.stringify(manifest, null, 1)}\n`));
    return manifest;
  }

  private async append(bytes: Uint8Array): Promise<ArtifactRegion> {
    if (!this.shard) {
      const file = `weights-${String(this.shards.length + 1).padStart(5, '0')}.bin`;
      this.shard = { file, bytes: 0, hash: sha256.create(), out: await this.sink.create(file) };
    }
    const region = { shard: this.shards.length, offset: this.shard.bytes, bytes: bytes.byteLength };
    this.shard.hash.update(bytes);
    await this.shard.out.write(bytes);
    this.shard.bytes += bytes.byteLength;
    return region;
  }

  private async closeShard(): Promise<void> {
    if (!this.shard) return;
    await this.shard.out.close();
    this.shards.push({ file: this.shard.file, bytes: this.shard.bytes, sha256: bytesToHex(this.shard.hash.digest()) });
    this.shard = undefined;
  }
}

/**
 * Converts a checkpoint (already checked against its spec) into an artifact: matrix by matrix in graph
 * order, part by part, holding at most one part (≤ 64 MiB) and one read chunk (≤ 32 MiB) in memory.
 */
export async function convertModel(files: ModelFiles, checkpoint: SafetensorsCheckpoint, matrices: readonly MatrixSpec[], sink: ArtifactSink, options: ConvertOptions): Promise<ArtifactManifest> {
  const { weights, signal } = options;
  const total = matrices.flatMap((m) => m.tensors).reduce((sum, name) => sum + checkpoint.get(name)!.byteLength, 0);
  let done = 0;
  const writer = new ArtifactWriter(sink);
  for (const matrix of matrices) {
    const infos = tensorShapes(matrix, checkpoint);
    const plan = planMatrix(matrix, infos.map((info) => info.shape), weights, ARTIFACT_PART_BYTES);
    const byName = new Map(infos.map((info) => [info.name, info]));
    const columnScale = matrix.columnScaleTensor ? await checkpoint.readFloat32(matrix.columnScaleTensor, signal) : undefined;
    if (columnScale) checkFinite(columnScale, checkpoint.get(matrix.columnScaleTensor!)!, 0);
    await writer.addMatrix(matrix, plan, (part) => {
      signal?.throwIfAborted();
      return packPart(part, byName, columnScale, signal, (bytes) => options.onProgress?.((done += bytes), total));
    });
  }
  for (const name of METADATA_FILES) {
    const bytes = await readBytes(files, name, signal).catch((error: unknown) => {
      if (error instanceof ModelFileMissingError) return undefined;
      throw error;
    });
    if (bytes) await writeWhole(sink, name, bytes);
  }
  return writer.finish(weights, await artifactSource(files, checkpoint, signal));
}

/** One part's buffers, packed on the CPU from its tensors' rows, chunk by chunk. */
async function packPart(part: PartPlan, byName: Map<string, TensorInfo>, columnScale: Float32Array | undefined, signal: AbortSignal | undefined, onBytes: (bytes: number) => void): Promise<PackedWeights> {
  const packed: PackedWeights = { layout: part.layout, data: new Uint32Array(part.layout.dataBytes / 4), scales: new Uint32Array(part.layout.scaleBytes / 4) };
  for (const slice of part.slices) {
    const info = byName.get(slice.tensor)!;
    const rowBytes = info.byteLength / info.shape[0]!;
    const rowsPerChunk = Math.max(1, Math.floor(READ_CHUNK_BYTES / rowBytes));
    for (let row = 0; row < slice.rows; row += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, slice.rows - row);
      const bytes = await readTensorRows(info, slice.sourceRow + row, rows, signal);
      const values = tensorToFloat32(info, bytes);
      checkFinite(values, info, slice.sourceRow + row, info.shape[1]!);
      packRows(packed, values, rows, slice.destRow + row, columnScale);
      onBytes(bytes.byteLength);
    }
  }
  return packed;
}

/** NaN/Inf weights are refused, as the GPU conversion refuses them (kernels/quantize.wgsl). */
function checkFinite(values: Float32Array, info: TensorInfo, firstRow: number, rowLength = values.length): void {
  const bad = values.findIndex((value) => !Number.isFinite(value));
  if (bad >= 0) throw new SafetensorsFormatError(info.source.name, `row ${firstRow + Math.floor(bad / rowLength)} holds NaN or infinite values: the weights are corrupt`, info.name);
}

async function readBytes(files: ModelFiles, name: string, signal: AbortSignal | undefined): Promise<Uint8Array> {
  const source = await files.open(name, signal);
  return source.read(0, source.size, signal);
}

async function writeWhole(sink: ArtifactSink, file: string, bytes: Uint8Array): Promise<void> {
  const out = await sink.create(file);
  await out.write(bytes);
  await out.close();
}

/** The manifest of a model folder, or undefined when the folder is a plain checkpoint. */
export async function readManifest(files: ModelFiles, signal?: AbortSignal): Promise<ArtifactManifest | undefined> {
  const manifest = (await readJsonIfPresent(files, MANIFEST_FILE, signal)) as ArtifactManifest | undefined;
  if (manifest === undefined) return undefined;
  const fail = (problem: string): never => {
    throw new UnsupportedModelError(`${MANIFEST_FILE}: ${problem}`);
  };
  if (manifest === null || typeof manifest !== 'object' || manifest.format !== ARTIFACT_FORMAT) fail(`not a ${ARTIFACT_FORMAT} manifest`);
  if (manifest.version !== ARTIFACT_VERSION) fail(`format version ${manifest.version} is not supported (this runtime reads version ${ARTIFACT_VERSION}); update tri-webgpu or convert again`);
  if (!Array.isArray(manifest.matrices) || !Array.isArray(manifest.shards)) fail('no matrices or shards');
  manifest.shards.forEach((shard, i) => {
    if (typeof shard?.file !== 'string' || !Number.isSafeInteger(shard.bytes) || !/^[0-9a-f]{64}$/.test(String(shard.sha256))) fail(`shards[${i}] needs file, bytes and a SHA-256`);
  });
  for (const matrix of manifest.matrices) {
    for (const part of matrix?.parts ?? []) {
      for (const region of [part.data, part.scales]) {
        if (region === undefined) continue;
        const shard = manifest.shards[region.shard];
        if (!shard || !Number.isSafeInteger(region.offset) || !Number.isSafeInteger(region.bytes) || region.offset < 0 || region.offset + region.bytes > shard.bytes || region.bytes % 4) {
          fail(`matrix ${matrix.label}: a part points outside its shard`);
        }
      }
    }
  }
  return manifest;
}

/** The weights of an artifact: allocated from the manifest, filled by streaming and verifying each shard. */
export class ArtifactWeights {
  readonly manifest: ArtifactManifest;
  private readonly files: ModelFiles;
  private readonly byLabel: Map<string, ArtifactMatrix>;

  constructor(files: ModelFiles, manifest: ArtifactManifest) {
    this.files = files;
    this.manifest = manifest;
    this.byLabel = new Map(manifest.matrices.map((matrix) => [matrix.label, matrix]));
  }

  /** Whether the artifact holds weights in this format. */
  formatMatches(weights: WeightFormatOptions): boolean {
    const own = this.manifest.weights;
    return weights.format === own.format && (weights.format !== 'q4' || ((weights.groupSize ?? 32) === (own.groupSize ?? 32) && Boolean(weights.withMin) === Boolean(own.withMin)));
  }

  /** `weights` asked for at load must be the artifact's own (it holds one format). */
  checkFormat(weights: WeightFormatOptions | undefined): WeightFormatOptions {
    const own = this.manifest.weights;
    if (weights && !this.formatMatches(weights)) throw new InvalidRequestError(`this model is a pre-converted artifact in ${JSON.stringify(own)}; it cannot load as ${JSON.stringify(weights)}`);
    return own;
  }

  /**
   * The manifest's entry for a graph matrix, checked against what the graph expects of it (the same part
   * plan the converter makes): a manifest for another model or format is refused, not loaded as garbage.
   */
  matrix(spec: MatrixSpec, shapes: readonly (readonly number[])[]): ArtifactMatrix {
    const entry = this.byLabel.get(spec.label);
    const plan = planMatrix(spec, shapes, this.manifest.weights, this.manifest.partBytes);
    const agrees = entry && entry.parts.length === plan.parts.length && entry.parts.every((part, i) => {
      const expected = plan.parts[i]!;
      return part.outputStart === expected.outputStart && part.outputs === expected.outputs
        && part.data.bytes === expected.layout.dataBytes && (part.scales?.bytes ?? 0) === expected.layout.scaleBytes;
    });
    if (!agrees) throw new UnsupportedModelError(`${MANIFEST_FILE}: matrix ${spec.label} is missing or does not match config.json`);
    return { ...entry, layout: plan.layout, parts: entry.parts.map((part, i) => ({ ...part, layout: plan.parts[i]!.layout })) };
  }

  /** GPU buffers for a matrix (zeroed; fill() writes them). */
  allocate(gpu: GpuContext, entry: ArtifactMatrix): GpuMatrix {
    const parts: GpuMatrixPart[] = entry.parts.map((part, i) => ({
      outputStart: part.outputStart, outputs: part.outputs, layout: part.layout,
      data: gpu.createBuffer(`${entry.label}[${i}]`, part.layout.dataBytes),
      scales: part.layout.scaleBytes ? gpu.createBuffer(`${entry.label}.scales[${i}]`, part.layout.scaleBytes) : placeholderBuffer(gpu, 'write'),
    }));
    return { layout: entry.layout, gatedPair: entry.gatedPair, parts };
  }

  /**
   * Streams every shard into the matrices' buffers, hashing it on the way; a shard whose size or SHA-256
   * is wrong is read once more (its cached copy dropped first), then refused with ModelIntegrityError.
   */
  async fill(gpu: GpuContext, matrices: Map<string, GpuMatrix>, options: { onBytes?: (bytes: number) => void; signal?: AbortSignal } = {}): Promise<void> {
    const targets = this.manifest.shards.map(() => [] as { region: ArtifactRegion; buffer: GPUBuffer }[]);
    for (const entry of this.manifest.matrices) {
      const matrix = matrices.get(entry.label);
      if (!matrix) continue;
      entry.parts.forEach((part, i) => {
        targets[part.data.shard]!.push({ region: part.data, buffer: matrix.parts[i]!.data });
        if (part.scales) targets[part.scales.shard]!.push({ region: part.scales, buffer: matrix.parts[i]!.scales });
      });
    }
    for (const [index, shard] of this.manifest.shards.entries()) {
      const source = await this.files.open(shard.file, options.signal);
      let problem = await this.streamShard(gpu, source, shard, targets[index]!, options);
      if (problem) {
        await source.invalidate?.();
        problem = await this.streamShard(gpu, await this.files.open(shard.file, options.signal), shard, targets[index]!, options);
      }
      if (problem) throw new ModelIntegrityError(shard.file, problem);
    }
  }

  /** One pass over a shard; returns what was wrong with it, or undefined. */
  private async streamShard(gpu: GpuContext, source: ByteSource, shard: ArtifactManifest['shards'][number], targets: { region: ArtifactRegion; buffer: GPUBuffer }[], options: { onBytes?: (bytes: number) => void; signal?: AbortSignal }): Promise<string | undefined> {
    if (source.size !== shard.bytes) return `is ${source.size} bytes, but the manifest says ${shard.bytes}`;
    const hash = sha256.create();
    for (let offset = 0; offset < shard.bytes; offset += READ_CHUNK_BYTES) {
      const bytes = await source.read(offset, Math.min(READ_CHUNK_BYTES, shard.bytes - offset), options.signal);
      hash.update(bytes);
      for (const { region, buffer } of targets) {
        const from = Math.max(offset, region.offset);
        const to = Math.min(offset + bytes.byteLength, region.offset + region.bytes);
        if (to > from) gpu.device.queue.writeBuffer(buffer, from - region.offset, bytes.buffer, bytes.byteOffset + from - offset, to - from);
      }
      options.onBytes?.(bytes.byteLength);
    }
    const digest = bytesToHex(hash.digest());
    return digest === shard.sha256 ? undefined : `SHA-256 ${digest} does not match the manifest's ${shard.sha256}`;
  }
}

