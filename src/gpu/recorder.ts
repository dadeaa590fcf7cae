// Records many dispatches into one compute pass and submits them together: a submit plus readback
// costs ~2.4 ms in Chromium on SwiftShader (DESIGN.md §4), so a whole forward pass is one submit. Each dispatch's
// Params live in a 256-byte slot of a shared uniform arena, written with one writeBuffer per chunk.
import type { GpuContext } from './context.ts';

export type ParamType = 'u32' | 'f32';
/** A kernel's Params struct, in WGSL field order. Mirrors `struct Params` in its .wgsl exactly. */
export type ParamLayout = Readonly<Record<string, ParamType>>;

export interface Kernel<P extends ParamLayout> {
  readonly name: string;
  readonly code: string;
  readonly params: P;
}

export type Binding = GPUBuffer | { buffer: GPUBuffer; offset?: number; size?: number };

const SLOT_BYTES = 256; // minUniformBufferOffsetAlignment is at most 256 on every adapter

interface ParamChunk {
  buffer: GPUBuffer;
  data: ArrayBuffer;
  u32: Uint32Array;
  f32: Float32Array;
  used: number; // bytes of slots taken
}

/** A kernel's Params fields in order, and which are u32: read once per kernel, not per dispatch. */
const paramFieldCache = new WeakMap<ParamLayout, { names: string[]; isU32: boolean[] }>();
function paramFields(layout: ParamLayout): { names: string[]; isU32: boolean[] } {
  let fields = paramFieldCache.get(layout);
  if (!fields) paramFieldCache.set(layout, (fields = { names: Object.keys(layout), isU32: Object.values(layout).map((type) => type === 'u32') }));
  return fields;
}
const CHUNK_SLOTS = 256;
const MAX_WORKGROUPS = 65535;

/** Splits a 1D workgroup count into a 2D grid that fits the per-dimension limit. */
export function grid(workgroups: number): [number, number] {
  if (workgroups <= MAX_WORKGROUPS) return [Math.max(1, workgroups), 1];
  return [MAX_WORKGROUPS, Math.ceil(workgroups / MAX_WORKGROUPS)];
}

/**
 * Dispatches recorded once and replayed by later recorders: their pipelines, bind groups and grids as
 * recorded, their Params in uniform buffers of their own, written once. What a decode step's layers
 * record is the same from one token to the next (only buffer contents change), so a replay skips the
 * ops' JS, the Params writes and the bind-group lookups, leaving the WebGPU calls themselves.
 */
export class RecordedDispatches {
  readonly commands: { pipeline: GPUComputePipeline; bindGroup: GPUBindGroup; x: number; y: number }[] = [];
  readonly chunks: ParamChunk[] = [];

  destroy(): void {
    for (const chunk of this.chunks) chunk.buffer.destroy();
  }
}

export class CommandRecorder {
  readonly gpu: GpuContext;
  private readonly encoder: GPUCommandEncoder;
  /** Begun at the first dispatch, so copies may come before it in the same command buffer. */
  private pass: GPUComputePassEncoder | undefined;
  private readonly chunks: ParamChunk[] = [];
  private lastPipeline: GPUComputePipeline | undefined;
  /** Where dispatches go while recordOrReplay records. */
  private recording: RecordedDispatches | undefined;
  private readonly timestamps: GPUQuerySet | undefined;
  private timestampsRead: GPUBuffer | undefined;
  dispatchCount = 0;

  /**
   * `timed`: the pass writes GPU timestamps at its start and end (where the device has timestamp-query),
   * read after the submit by gpuMilliseconds(). Off by default: it costs a query set and a readback.
   */
  constructor(gpu: GpuContext, options: { timed?: boolean } = {}) {
    this.gpu = gpu;
    this.encoder = gpu.device.createCommandEncoder();
    if (options.timed && gpu.capabilities.timestampQuery) this.timestamps = gpu.device.createQuerySet({ type: 'timestamp', count: 2 });
  }

  /** Copies bytes between buffers ahead of the dispatches (e.g. a token id the previous step drew on the GPU). */
  copyBeforeDispatches(source: GPUBuffer, sourceOffset: number, destination: GPUBuffer, destinationOffset: number, size: number): void {
    if (this.pass) throw new Error('copyBeforeDispatches after the first dispatch');
    this.encoder.copyBufferToBuffer(source, sourceOffset, destination, destinationOffset, size);
  }

  dispatch<P extends ParamLayout>(
    kernel: Kernel<P>,
    params: { [K in keyof P]: number },
    bindings: readonly Binding[],
    workgroups: number | [number, number],
    constants: Record<string, number> = {},
  ): void {
    const pipeline = this.gpu.pipeline(kernel.name, kernel.code, constants);
    const chunk = this.paramChunk();
    const offset = chunk.used;
    chunk.used += SLOT_BYTES;
    const { names, isU32 } = paramFields(kernel.params);
    for (let i = 0; i < names.length; i++) {
      if (isU32[i]) chunk.u32[offset / 4 + i] = params[names[i] as keyof P];
      else chunk.f32[offset / 4 + i] = params[names[i] as keyof P];
    }
    const uniform = { buffer: chunk.buffer, offset, size: SLOT_BYTES };
    // A recording keeps its bind groups itself: they need not fill the context's cache.
    const bindGroup = this.recording ? this.gpu.createBindGroup(pipeline, uniform, bindings) : this.gpu.bindGroup(pipeline, uniform, bindings);
    const [x, y] = typeof workgroups === 'number' ? grid(workgroups) : workgroups;
    this.recording?.commands.push({ pipeline, bindGroup, x, y });
    this.encode(pipeline, bindGroup, x, y);
  }

  /**
   * Replays `recordings.get(key)`, or records what `record` dispatches (no copies, no writeBuffer: those
   * would not replay) and keeps it there under `key`. `key` must name everything that changes what
   * `record` records; at most `limit` recordings are kept (the oldest go first). True if it replayed.
   */
  recordOrReplay(recordings: Map<string, RecordedDispatches>, key: string, record: () => void, limit = 32): boolean {
    const recorded = recordings.get(key);
    if (recorded) {
      for (const { pipeline, bindGroup, x, y } of recorded.commands) this.encode(pipeline, bindGroup, x, y);
      return true;
    }
    if (this.recording) throw new Error('recordOrReplay inside a recording');
    const recording = new RecordedDispatches();
    this.recording = recording;
    try {
      record();
    } finally {
      this.recording = undefined;
    }
    for (const chunk of recording.chunks) this.gpu.device.queue.writeBuffer(chunk.buffer, 0, chunk.data, 0, chunk.used);
    // Steps already queued may still use an evicted recording's uniforms: the garbage collector frees them.
    if (recordings.size >= limit) recordings.delete(recordings.keys().next().value!);
    recordings.set(key, recording);
    return false;
  }

  private encode(pipeline: GPUComputePipeline, bindGroup: GPUBindGroup, x: number, y: number): void {
    this.pass ??= this.encoder.beginComputePass(
      this.timestamps ? { timestampWrites: { querySet: this.timestamps, beginningOfPassWriteIndex: 0, endOfPassWriteIndex: 1 } } : {},
    );
    // Consecutive dispatches of one pipeline (a matrix split into parts) set it once.
    if (pipeline !== this.lastPipeline) this.pass.setPipeline(pipeline);
    this.lastPipeline = pipeline;
    this.pass.setBindGroup(0, bindGroup);
    this.pass.dispatchWorkgroups(x, y);
    this.dispatchCount++;
  }

  submit(): void {
    this.pass?.end();
    if (this.timestamps && this.pass) {
      const resolved = this.gpu.device.createBuffer({ label: 'timestamps', size: 16, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      this.timestampsRead = this.gpu.device.createBuffer({ label: 'timestamps.read', size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      this.encoder.resolveQuerySet(this.timestamps, 0, 2, resolved, 0);
      this.encoder.copyBufferToBuffer(resolved, 0, this.timestampsRead, 0, 16);
      this.gpu.device.queue.onSubmittedWorkDone().then(() => resolved.destroy(), () => {});
    } else {
      this.timestamps?.destroy(); // nothing was dispatched: no pass to time
    }
    for (const chunk of this.chunks) this.gpu.device.queue.writeBuffer(chunk.buffer, 0, chunk.data, 0, chunk.used);
    this.gpu.device.queue.submit([this.encoder.finish()]);
    for (const chunk of this.chunks) releaseChunk(this.gpu, chunk);
  }

  /**
   * After submit(): the GPU time from the pass's first to its last command, in ms; undefined when the
   * recorder was not `timed` or the device has no timestamp-query. Browsers may round timestamps (Chromium
   * to 100 µs unless its unsafe-APIs flag is on), so single tiny passes read coarse.
   */
  async gpuMilliseconds(): Promise<number | undefined> {
    const span = await this.gpuSpan();
    return span && span.endMs - span.startMs;
  }

  /**
   * After submit(): when the pass began and ended on the GPU's clock, in ms (an arbitrary origin, the same
   * for every pass of a device): the gaps between passes are the GPU's idle time. Undefined as above.
   */
  async gpuSpan(): Promise<{ startMs: number; endMs: number } | undefined> {
    const read = this.timestampsRead;
    if (!read || !this.timestamps) return undefined;
    this.timestampsRead = undefined;
    try {
      await read.mapAsync(GPUMapMode.READ);
      const [start, end] = new BigUint64Array(read.getMappedRange());
      return end! >= start! ? { startMs: Number(start!) / 1e6, endMs: Number(end!) / 1e6 } : undefined;
    } finally {
      read.destroy();
      this.timestamps.destroy();
    }
  }

  /** A uniform chunk with a free 256-byte slot (at `used`): the recording's own while recording. */
  private paramChunk(): ParamChunk {
    const chunks = this.recording?.chunks ?? this.chunks;
    let chunk = chunks.at(-1);
    if (!chunk || chunk.used === chunk.data.byteLength) {
      chunk = this.recording ? newChunk(this.gpu) : acquireChunk(this.gpu);
      chunks.push(chunk);
    }
    return chunk;
  }
}

// Uniform chunks (the GPU buffer and its CPU copy) are reused across submits: writeBuffer copies the
// data and is ordered on the queue after earlier submits, so a chunk can be refilled as soon as its submit
// has been queued. (Reusing the CPU copy, not allocating 64 KB per step, did not measurably change the
// garbage collector's share of a decode step in Node: 18.9% before, 18.0% after, in a CPU profile of
// bench/host-cost.ts's graph; its garbage comes from elsewhere.)
const freeChunks = new WeakMap<GpuContext, ParamChunk[]>();

function acquireChunk(gpu: GpuContext): ParamChunk {
  const chunk = freeChunks.get(gpu)?.pop();
  if (chunk) {
    chunk.used = 0;
    return chunk;
  }
  return newChunk(gpu);
}

function newChunk(gpu: GpuContext): ParamChunk {
  const data = new ArrayBuffer(SLOT_BYTES * CHUNK_SLOTS);
  const buffer = gpu.device.createBuffer({ label: 'params', size: SLOT_BYTES * CHUNK_SLOTS, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  return { buffer, data, u32: new Uint32Array(data), f32: new Float32Array(data), used: 0 };
}

function releaseChunk(gpu: GpuContext, chunk: ParamChunk): void {
  let free = freeChunks.get(gpu);
  if (!free) freeChunks.set(gpu, (free = []));
  free.push(chunk);
}
