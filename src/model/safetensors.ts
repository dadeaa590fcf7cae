// Our own small safetensors reader. Format: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?}, then the data; offsets are
// relative to the end of the header. Tensors are read one byte range at a time, never whole files.
import { ModelFileMissingError, SafetensorsFormatError } from '../errors.ts';
import { type ByteSource, type ModelFiles, isPlainFileName, readJsonIfPresent } from './byte-source.ts';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16' | 'I8' | 'U8' | 'I32';

export const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2, I8: 1, U8: 1, I32: 4 };

export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** Absolute offset in the file. */
  readonly byteOffset: number;
  readonly byteLength: number;
  readonly source: ByteSource;
}

/** Headers larger than this are refused: real ones are well under 1 MiB even for 100B-parameter shards. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

export async function readSafetensorsHeader(source: ByteSource, signal?: AbortSignal): Promise<Map<string, TensorInfo>> {
  const fail = (problem: string, tensor?: string): never => {
    throw new SafetensorsFormatError(source.name, problem, tensor);
  };
  if (source.size < 8) fail(`file is ${source.size} bytes, too short for the 8-byte header length`);
  const lengthBytes = await source.read(0, 8, signal);
  const headerLength = Number(new DataView(lengthBytes.buffer, lengthBytes.byteOffset, 8).getBigUint64(0, true));
  if (headerLength > source.size - 8) {
    fail(`header length ${headerLength} runs past the end of the file (${source.size} bytes): truncated or not safetensors`);
  }
  if (headerLength > MAX_HEADER_BYTES) fail(`header length ${headerLength} is implausibly large`);
  const dataStart = 8 + headerLength;
  const dataLength = source.size - dataStart;

  const headerBytes = await source.read(8, headerLength, signal); // an abort here is an abort, not bad JSON
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (error) {
    fail(`header is not valid UTF-8 JSON (${(error as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');

  const tensors = new Map<string, TensorInfo>();
  const ranges: Array<[begin: number, end: number, name: string]> = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, data_offsets: offsets } = (entry ?? {}) as Record<string, unknown>;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) fail(`unsupported dtype ${JSON.stringify(dtype)}`, name);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, name);
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
      fail(`data_offsets ${JSON.stringify(offsets)} is not [begin, end]`, name);
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) fail(`data_offsets [${begin}, ${end}] are reversed`, name);
    if (end > dataLength) {
      fail(`data_offsets end ${end} is past the end of the data (${dataLength} bytes): file truncated?`, name);
    }
    const elements = (shape as number[]).reduce((a, b) => a * b, 1);
    const expected = elements * DTYPE_BYTES[dtype as SafetensorsDtype];
    if (end - begin !== expected) {
      fail(`shape [${(shape as number[]).join(', ')}] × ${dtype} needs ${expected} bytes but data_offsets span ${end - begin}`, name);
    }
    ranges.push([begin, end, name]);
    tensors.set(name, {
      name,
      dtype: dtype as SafetensorsDtype,
      shape: shape as number[],
      byteOffset: dataStart + begin,
      byteLength: end - begin,
      source,
    });
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < ranges.length; i++) {
    const [, previousEnd, previousName] = ranges[i - 1]!;
    const [begin, , name] = ranges[i]!;
    if (begin < previousEnd) fail(`data overlaps tensor "${previousName}"`, name);
  }
  return tensors;
}

export function readTensorBytes(info: TensorInfo, signal?: AbortSignal): Promise<Uint8Array> {
  return info.source.read(info.byteOffset, info.byteLength, signal);
}

/** Bytes of rows [firstRow, firstRow + rows) of a tensor (rows along its first dimension). */
export function readTensorRows(info: TensorInfo, firstRow: number, rows: number, signal?: AbortSignal): Promise<Uint8Array> {
  const rowBytes = info.byteLength / (info.shape[0] || 1);
  return info.source.read(info.byteOffset + firstRow * rowBytes, rows * rowBytes, signal);
}

/** Widens F32/F16/BF16 tensor bytes to a Float32Array (a copy; `bytes` may be unaligned). */
export function tensorToFloat32(info: TensorInfo, bytes: Uint8Array): Float32Array<ArrayBuffer> {
  const count = bytes.byteLength / DTYPE_BYTES[info.dtype]; // the whole tensor, or the rows that were read
  const out = new Float32Array(count);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (info.dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case 'BF16': {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < count; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      return out;
    default:
      throw new SafetensorsFormatError(info.source.name, `dtype ${info.dtype} is not a float type`, info.name);
  }
}

export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const mantissa = h & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa ? NaN : sign * Infinity;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** All tensors of a checkpoint: one `model.safetensors`, or shards listed by `model.safetensors.index.json`. */
export class SafetensorsCheckpoint {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  private constructor(tensors: Map<string, TensorInfo>) {
    this.tensors = tensors;
  }

  static async open(files: ModelFiles, signal?: AbortSignal): Promise<SafetensorsCheckpoint> {
    const indexName = 'model.safetensors.index.json';
    const index = (await readJsonIfPresent(files, indexName, signal)) as { weight_map?: Record<string, string> } | undefined;
    if (!index) {
      return new SafetensorsCheckpoint(await readSafetensorsHeader(await files.open('model.safetensors', signal), signal));
    }
    const weightMap = index.weight_map;
    if (!weightMap || typeof weightMap !== 'object') {
      throw new SafetensorsFormatError(indexName, 'has no "weight_map" object');
    }
    for (const [name, shard] of Object.entries(weightMap)) {
      if (!isPlainFileName(shard)) {
        throw new SafetensorsFormatError(indexName, `weight_map places this tensor in ${JSON.stringify(shard)}, which is not a plain file name in the model folder`, name);
      }
    }
    const tensors = new Map<string, TensorInfo>();
    for (const shard of new Set(Object.values(weightMap))) {
      let source: ByteSource;
      try {
        source = await files.open(shard, signal);
      } catch (error) {
        if (error instanceof ModelFileMissingError) {
          throw new ModelFileMissingError(shard, `${files.location} (named by ${indexName})`, { cause: error });
        }
        throw error;
      }
      for (const [name, info] of await readSafetensorsHeader(source, signal)) tensors.set(name, info);
    }
    for (const [name, shard] of Object.entries(weightMap)) {
      const info = tensors.get(name);
      if (!info || info.source.name !== shard) {
        throw new SafetensorsFormatError(shard, `${indexName} places this tensor here but the shard does not hold it`, name);
      }
    }
    return new SafetensorsCheckpoint(tensors);
  }

  get(name: string): TensorInfo | undefined {
    return this.tensors.get(name);
  }

  async readFloat32(name: string, signal?: AbortSignal): Promise<Float32Array<ArrayBuffer>> {
    const info = this.tensors.get(name);
    if (!info) throw new SafetensorsFormatError('checkpoint', 'tensor not found', name);
    return tensorToFloat32(info, await readTensorBytes(info, signal));
  }
}
