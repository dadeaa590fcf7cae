// Loading weight matrices onto the GPU in a chosen format. The checkpoint's bytes (f32, f16 or bf16) go
// up as they are, in row chunks of at most CHUNK_BYTES, and the quantize kernel converts them on the GPU:
// JS never holds more than one chunk, and the CPU does no per-weight work.
import { GpuLimitError, SafetensorsFormatError } from '../errors.ts';
import { type GpuContext, checkBufferSize } from '../gpu/context.ts';
import { CommandRecorder } from '../gpu/recorder.ts';
import { type GpuMatrix, type GpuMatrixPart, placeholderBuffer } from '../ops/linear.ts';
import { type SourceDtype, quantize } from '../ops/quantize.ts';
import { type PackedWeights, type WeightFormatOptions, type WeightLayout, weightLayout } from './quant.ts';
import { type SafetensorsCheckpoint, type TensorInfo, readTensorRows } from './safetensors.ts';

/** Source bytes uploaded per conversion dispatch; bounds JS and staging memory during load. */
const CHUNK_BYTES = 32 << 20;

/** A logical matrix made of checkpoint tensors stacked along rows (e.g. q, k, v), or a gate/up pair. */
export interface MatrixSpec {
  label: string;
  tensors: readonly string[];
  /** Two tensors of equal shape computed together as silu(gate) · up. */
  gatedPair?: boolean;
  /** A [K] tensor (an RMSNorm weight) that multiplies column k before conversion: the norm folded in. */
  columnScaleTensor?: string;
}

export interface RowSlice {
  tensor: string;
  sourceRow: number;
  rows: number;
  destRow: number; // within the part
}

export interface PartPlan {
  outputStart: number;
  outputs: number;
  layout: WeightLayout;
  slices: RowSlice[];
}

/** Splits a matrix into parts that each fit one binding, and says which tensor rows go where. */
export function planMatrix(spec: MatrixSpec, shapes: readonly (readonly number[])[], format: WeightFormatOptions, bindingLimit: number): { layout: WeightLayout; parts: PartPlan[] } {
  const k = shapes[0]![1]!;
  const rows = shapes.map((shape) => shape[0]!);
  const totalRows = rows.reduce((a, b) => a + b, 0);
  const layout = weightLayout(totalRows, k, format);
  const outputs = spec.gatedPair ? rows[0]! : totalRows;
  const rowsPerOutput = spec.gatedPair ? 2 : 1;
  const fourRows = weightLayout(4, k, format); // rows are stored in fours
  const bytesPerRow = Math.max(fourRows.dataBytes, fourRows.scaleBytes) / 4;
  const outputsPerPart = Math.floor(bindingLimit / bytesPerRow / rowsPerOutput / 4) * 4;
  if (outputsPerPart < 4) throw new GpuLimitError(`${spec.label}: one row (${bytesPerRow} bytes) does not fit this GPU's binding limit`);

  const parts: PartPlan[] = [];
  for (let outputStart = 0; outputStart < outputs; outputStart += outputsPerPart) {
    const count = Math.min(outputsPerPart, outputs - outputStart);
    const slices: RowSlice[] = [];
    if (spec.gatedPair) {
      // The kernel reads up rows from the next multiple of 4 after the gate rows.
      slices.push({ tensor: spec.tensors[0]!, sourceRow: outputStart, rows: count, destRow: 0 });
      slices.push({ tensor: spec.tensors[1]!, sourceRow: outputStart, rows: count, destRow: Math.ceil(count / 4) * 4 });
    } else {
      // Intersect [outputStart, outputStart + count) with each stacked tensor's rows.
      let tensorStart = 0;
      spec.tensors.forEach((tensor, i) => {
        const from = Math.max(outputStart, tensorStart);
        const to = Math.min(outputStart + count, tensorStart + rows[i]!);
        if (to > from) slices.push({ tensor, sourceRow: from - tensorStart, rows: to - from, destRow: from - outputStart });
        tensorStart += rows[i]!;
      });
    }
    const storedRows = spec.gatedPair ? 2 * Math.ceil(count / 4) * 4 : count;
    parts.push({ outputStart, outputs: count, layout: weightLayout(storedRows, k, format), slices });
  }
  return { layout, parts };
}

export function tensorShapes(spec: MatrixSpec, checkpoint: SafetensorsCheckpoint): TensorInfo[] {
  const infos = spec.tensors.map((name) => {
    const info = checkpoint.get(name);
    if (!info) throw new SafetensorsFormatError('checkpoint', 'tensor not found', name);
    return info;
  });
  if (infos.some((info) => info.shape.length !== 2 || info.shape[1] !== infos[0]!.shape[1])) {
    throw new SafetensorsFormatError(infos[0]!.source.name, `tensors ${spec.tensors.join(', ')} must be matrices with equal columns`);
  }
  if (spec.gatedPair && (infos.length !== 2 || infos[0]!.shape[0] !== infos[1]!.shape[0])) {
    throw new SafetensorsFormatError(infos[0]!.source.name, 'a gate/up pair needs two tensors of equal shape');
  }
  return infos;
}

/**
 * Matrices are cut by rows into parts of at most this many bytes: every part fits one binding on every
 * WebGPU device (the spec's smallest maxStorageBufferBindingSize is 128 MiB), and a checkpoint converted
 * here has exactly the parts of an artifact (FORMAT.md), so its buffers can be kept as one. Only Tri-7B's
 * embedding and head are that large (q4: 4 parts each, f16: 16).
 */
export const MATRIX_PART_BYTES = 64 * 2 ** 20;

const bindingLimit = (gpu: GpuContext) => Math.min(gpu.capabilities.maxStorageBufferBindingSize, gpu.capabilities.maxBufferSize);
/** The most bytes of one matrix part on this device. */
export const matrixPartLimit = (gpu: GpuContext) => Math.min(bindingLimit(gpu), MATRIX_PART_BYTES);

/** The GPU buffers a matrix will take, for the memory check before anything is read. */
export function gpuMatrixBuffers(spec: MatrixSpec, shapes: readonly (readonly number[])[], format: WeightFormatOptions, limit: number): { label: string; bytes: number }[] {
  const { parts } = planMatrix(spec, shapes, format, limit);
  return parts.flatMap((part, i) => [
    { label: `${spec.label}[${i}]`, bytes: part.layout.dataBytes },
    ...(part.layout.scaleBytes ? [{ label: `${spec.label}.scales[${i}]`, bytes: part.layout.scaleBytes }] : []),
  ]);
}

/** A matrix whose buffers exist but hold no weights yet. */
export interface PendingMatrix {
  readonly spec: MatrixSpec;
  readonly checkpoint: SafetensorsCheckpoint;
  readonly infos: readonly TensorInfo[];
  readonly plans: readonly PartPlan[];
  readonly matrix: GpuMatrix;
}

/** Reads and converts matrices one chunk at a time through one staging buffer. */
export class GpuWeightUploader {
  private readonly gpu: GpuContext;
  private staging: GPUBuffer | undefined;
  /** One u32: the first chunk row with a NaN/Inf (kernels/quantize.wgsl), 0xffffffff when none. */
  private nonFinite: GPUBuffer | undefined;
  private readonly onBytes: (bytes: number) => void;
  private readonly signal: AbortSignal | undefined;

  constructor(gpu: GpuContext, options: { onBytes?: (bytes: number) => void; signal?: AbortSignal } = {}) {
    this.gpu = gpu;
    this.onBytes = options.onBytes ?? (() => {});
    this.signal = options.signal;
  }

  /**
   * Creates the (zeroed) GPU buffers of a matrix without reading anything, so that a model's whole
   * allocation can be tried before its weights are downloaded.
   */
  allocate(spec: MatrixSpec, checkpoint: SafetensorsCheckpoint, format: WeightFormatOptions): PendingMatrix {
    const infos = tensorShapes(spec, checkpoint);
    const { matrix, plans } = allocateMatrix(this.gpu, spec, infos.map((info) => info.shape), format);
    return { spec, checkpoint, infos, plans, matrix };
  }

  /** Reads a matrix's tensors chunk by chunk and converts them into its buffers. */
  async fill(pending: PendingMatrix): Promise<GpuMatrix> {
    const { spec, checkpoint, infos, plans, matrix } = pending;
    const byName = new Map(infos.map((info) => [info.name, info]));
    let columnScale: GPUBuffer | undefined;
    if (spec.columnScaleTensor) {
      const norm = await checkpoint.readFloat32(spec.columnScaleTensor, this.signal);
      const bad = norm.findIndex((value) => !Number.isFinite(value));
      if (bad >= 0) throw new SafetensorsFormatError(checkpoint.get(spec.columnScaleTensor)!.source.name, `element ${bad} is ${norm[bad]}: the weights are corrupt`, spec.columnScaleTensor);
      columnScale = this.gpu.upload(`${spec.label}.columnScale`, norm);
    }
    try {
      for (const [i, plan] of plans.entries()) {
        for (const slice of plan.slices) await this.convert(byName.get(slice.tensor)!, slice, matrix.parts[i]!, columnScale);
      }
    } finally {
      columnScale?.destroy();
    }
    return matrix;
  }

  private async convert(info: TensorInfo, slice: RowSlice, part: GpuMatrixPart, columnScale: GPUBuffer | undefined): Promise<void> {
    if (!['F32', 'F16', 'BF16'].includes(info.dtype)) throw new SafetensorsFormatError(info.source.name, `dtype ${info.dtype} is not a float weight type`, info.name);
    const rowBytes = info.byteLength / info.shape[0]!;
    const rowsPerChunk = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
    for (let done = 0; done < slice.rows; done += rowsPerChunk) {
      const rows = Math.min(rowsPerChunk, slice.rows - done);
      const bytes = await readTensorRows(info, slice.sourceRow + done, rows, this.signal);
      const staging = this.stagingFor(bytes.byteLength);
      // writeBuffer needs a multiple of 4 bytes (odd counts of f16 values).
      const aligned = bytes.byteLength % 4 === 0 ? bytes : padTo4(bytes);
      this.gpu.device.queue.writeBuffer(staging, 0, aligned.buffer, aligned.byteOffset, aligned.byteLength);
      this.nonFinite ??= this.gpu.createBuffer('weights.nonFinite', 4);
      this.gpu.device.queue.writeBuffer(this.nonFinite, 0, new Uint32Array([0xffffffff]));
      const recorder = new CommandRecorder(this.gpu);
      quantize(recorder, {
        source: staging, sourceDtype: info.dtype as SourceDtype, rows, rowOffset: slice.destRow + done,
        layout: part.layout, data: part.data, scales: part.scales,
        columnScale: columnScale ?? placeholderBuffer(this.gpu), columnScaled: columnScale !== undefined, nonFinite: this.nonFinite,
      });
      recorder.submit();
      // Reading the flag back also waits for the chunk: staging is reused, and queued uploads would
      // otherwise pile up in memory.
      const badRow = new Uint32Array(await this.gpu.readBack(this.nonFinite, 4))[0]!;
      if (badRow !== 0xffffffff) {
        throw new SafetensorsFormatError(info.source.name, `row ${slice.sourceRow + done + badRow} holds NaN or infinite values: the weights are corrupt`, info.name);
      }
      this.onBytes(bytes.byteLength);
    }
  }

  private stagingFor(byteLength: number): GPUBuffer {
    const size = Math.ceil(byteLength / 4) * 4;
    if (!this.staging || this.staging.size < size) {
      this.staging?.destroy();
      this.staging = this.gpu.createBuffer('weights.staging', Math.max(size, Math.min(CHUNK_BYTES, bindingLimit(this.gpu))));
    }
    return this.staging;
  }

  /** Frees the staging buffer (call once the model is loaded). */
  finish(): void {
    this.staging?.destroy();
    this.staging = undefined;
    this.nonFinite?.destroy();
    this.nonFinite = undefined;
  }
}

function createPart(gpu: GpuContext, label: string, plan: PartPlan): GpuMatrixPart {
  const data = gpu.createBuffer(label, plan.layout.dataBytes);
  const scales = plan.layout.scaleBytes ? gpu.createBuffer(`${label}.scales`, plan.layout.scaleBytes) : placeholderBuffer(gpu, 'write');
  return { outputStart: plan.outputStart, outputs: plan.outputs, layout: plan.layout, data, scales };
}

/** The (zeroed) buffers of a matrix of the given tensor shapes, split into parts that each fit one binding. */
export function allocateMatrix(gpu: GpuContext, spec: MatrixSpec, shapes: readonly (readonly number[])[], format: WeightFormatOptions): { matrix: GpuMatrix; plans: PartPlan[] } {
  const { layout, parts: plans } = planMatrix(spec, shapes, format, matrixPartLimit(gpu));
  const parts = plans.map((plan, i) => createPart(gpu, `${spec.label}[${i}]`, plan));
  return { plans, matrix: { layout, gatedPair: spec.gatedPair ?? false, parts } };
}

function padTo4(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  const padded = new Uint8Array(Math.ceil(bytes.byteLength / 4) * 4);
  padded.set(bytes);
  return padded;
}

function destroyPart(part: GpuMatrixPart): void {
  part.data.destroy();
  if (part.layout.scaleBytes) part.scales.destroy();
}

export function destroyGpuMatrix(matrix: GpuMatrix): void {
  for (const part of matrix.parts) destroyPart(part);
}

/** A matrix packed on the CPU (packWeights or packGatedPair with `gatedOutputs`), uploaded as one part: for tests and benchmarks. */
export function uploadPackedMatrix(gpu: GpuContext, label: string, packed: PackedWeights, gatedOutputs?: number): GpuMatrix {
  checkBufferSize(gpu.capabilities, label, packed.layout.dataBytes);
  const data = gpu.upload(label, packed.data);
  const scales = packed.layout.scaleBytes ? gpu.upload(`${label}.scales`, packed.scales) : placeholderBuffer(gpu);
  const gatedPair = gatedOutputs !== undefined;
  const outputs = gatedOutputs ?? packed.layout.n;
  return { layout: packed.layout, gatedPair, parts: [{ outputStart: 0, outputs, layout: packed.layout, data, scales }] };
}
