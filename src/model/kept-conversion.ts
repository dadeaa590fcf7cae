// A plain checkpoint converted on the GPU at load (Tri-7B: 15 GB of bf16) is kept in OPFS as an artifact
// (FORMAT.md) read back from the GPU buffers, so the next load reads a quarter of the bytes (q4) and
// converts nothing. The kept copy is bit-identical to what `npx tri-webgpu convert` writes for the same
// checkpoint and format (the CPU quantizer matches kernels/quantize.wgsl, and a checkpoint converted at
// load has the artifact's parts, MATRIX_PART_BYTES), and is loaded like one: every shard's SHA-256 is
// checked as it streams. Its manifest names the checkpoint it came from (config.json and the tensor
// table, digested): a changed checkpoint or another weight format never picks it up.
// Layout: <root>/tri-webgpu-models/<encoded folder URL>/converted-<format>/<artifact files>.
import { ModelFileMissingError } from '../errors.ts';
import { type ArtifactManifest, type ArtifactSink, ArtifactWeights, ArtifactWriter, ARTIFACT_PART_BYTES, readManifest } from './artifact.ts';
import type { ByteSource, ModelFiles } from './byte-source.ts';
import type { LlamaSpec } from './config.ts';
import { planMatrix } from './gpu-weights.ts';
import { type GpuLlama, graphMatrices, matrixShapes } from './llama-gpu.ts';
import { opfsModelDirectory, writeAt } from './opfs-store.ts';
import type { WeightFormatOptions } from './quant.ts';

/** The folder a format's conversion is kept in: one per weight format. */
function folderName(weights: WeightFormatOptions): string {
  return weights.format === 'q4' ? `converted-q4-g${weights.groupSize ?? 32}${weights.withMin ? '-min' : ''}` : `converted-${weights.format}`;
}

const sameSource = (a: ArtifactManifest['source'], b: ArtifactManifest['source']) => a.configSha256 === b.configSha256 && a.tensorsSha256 === b.tensorsSha256;

/**
 * The conversion of this checkpoint into `weights` kept for `location`, as artifact weights to load, or
 * undefined when there is none (OPFS missing, never kept, kept from another checkpoint: then removed).
 */
export async function openKeptConversion(location: string, weights: WeightFormatOptions, source: ArtifactManifest['source'], signal?: AbortSignal): Promise<ArtifactWeights | undefined> {
  const model = await opfsModelDirectory(location, false);
  const directory = await model?.getDirectoryHandle(folderName(weights)).catch(() => undefined);
  if (!model || !directory) return undefined;
  const files = new OpfsFolderFiles(directory, `${location} (kept conversion)`);
  const manifest = await readManifest(files, signal).catch(() => undefined);
  if (manifest && sameSource(manifest.source, source)) {
    const artifact = new ArtifactWeights(files, manifest);
    if (artifact.formatMatches(weights)) return artifact;
  }
  await forgetKeptConversion(location, weights); // incomplete (no manifest), unreadable, or of an older checkpoint
  return undefined;
}

/** Removes a kept conversion (one that failed verification, or before a new one is written). */
export async function forgetKeptConversion(location: string, weights: WeightFormatOptions): Promise<void> {
  const model = await opfsModelDirectory(location, false);
  await model?.removeEntry(folderName(weights), { recursive: true }).catch(() => {});
}

/**
 * Reads every weight matrix of a loaded model back from the GPU, part by part (one part, ≤ 64 MiB, in
 * memory at a time), and writes them to OPFS as an artifact, manifest last. Returns false where OPFS is
 * missing or refuses (quota, a full disk): keeping is an optimisation, never a reason for a load to fail.
 * An abort removes what was written and throws.
 */
export async function keepConversion(model: GpuLlama, location: string, weights: WeightFormatOptions, source: ArtifactManifest['source'], options: { onProgress?: (done: number, total: number) => void; signal?: AbortSignal } = {}): Promise<boolean> {
  const { signal } = options;
  const modelDirectory = await opfsModelDirectory(location, true);
  if (!modelDirectory) return false;
  await forgetKeptConversion(location, weights);
  try {
    const directory = await modelDirectory.getDirectoryHandle(folderName(weights), { create: true });
    const writer = new ArtifactWriter(opfsSink(directory));
    const total = keptConversionBytes(model.spec, weights);
    let done = 0;
    for (const { matrix, plan } of artifactPlans(model.spec, weights)) {
      await writer.addMatrix(matrix, plan, async (part, index) => {
        signal?.throwIfAborted();
        const packed = await model.readMatrixPart(matrix.label, index);
        if (packed.layout.dataBytes !== part.layout.dataBytes || packed.layout.scaleBytes !== part.layout.scaleBytes) {
          // Only on a device binding less than 64 MiB (WebGPU's floor is 128): its parts are not the artifact's. Nothing is kept.
          throw new Error(`${matrix.label}[${index}] on the GPU does not have the artifact's layout`);
        }
        options.onProgress?.((done += part.layout.dataBytes + part.layout.scaleBytes), total);
        return packed;
      });
    }
    await writer.finish(weights, source);
    return true;
  } catch (error) {
    await forgetKeptConversion(location, weights);
    if (signal?.aborted) throw error;
    return false;
  }
}

/** Every graph matrix with its artifact part plan. */
function artifactPlans(spec: LlamaSpec, weights: WeightFormatOptions) {
  const shapes = matrixShapes(spec);
  return graphMatrices(spec).map((matrix) => ({ matrix, plan: planMatrix(matrix, shapes(matrix.label), weights, ARTIFACT_PART_BYTES) }));
}

/** The bytes a kept conversion takes in storage (its shards). */
export function keptConversionBytes(spec: LlamaSpec, weights: WeightFormatOptions): number {
  return artifactPlans(spec, weights).flatMap(({ plan }) => plan.parts).reduce((sum, part) => sum + part.layout.dataBytes + part.layout.scaleBytes, 0);
}

/** Writes artifact files into an OPFS folder, appending each write at the file's end. */
function opfsSink(directory: FileSystemDirectoryHandle): ArtifactSink {
  return {
    async create(file) {
      const handle = await directory.getFileHandle(file, { create: true });
      let written = 0;
      return {
        write: async (bytes) => {
          await writeAt(handle, written, bytes);
          written += bytes.byteLength;
        },
        close: async () => {},
      };
    },
  };
}

/** An OPFS folder as model files (read-only); a stored file that fails verification is removed. */
class OpfsFolderFiles implements ModelFiles {
  readonly location: string;
  private readonly directory: FileSystemDirectoryHandle;

  constructor(directory: FileSystemDirectoryHandle, location: string) {
    this.directory = directory;
    this.location = location;
  }

  async open(fileName: string, signal?: AbortSignal): Promise<ByteSource> {
    signal?.throwIfAborted();
    let file: File;
    try {
      file = await (await this.directory.getFileHandle(fileName)).getFile();
    } catch (error) {
      throw new ModelFileMissingError(fileName, this.location, { cause: error });
    }
    const directory = this.directory;
    return {
      name: fileName,
      size: file.size,
      async read(offset, length, readSignal) {
        readSignal?.throwIfAborted();
        return new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
      },
      async invalidate() {
        await directory.removeEntry(fileName).catch(() => {});
      },
    };
  }
}
