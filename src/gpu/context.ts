// The WebGPU boundary: adapter/device with the limits we need, capability detection, a pipeline
// cache, and typed errors for everything that can go wrong there.
import { DeviceLostError, GpuLimitError, GpuOutOfMemoryError, TriWebGPUError, WebGPUUnavailableError } from '../errors.ts';

export interface GpuCapabilities {
  readonly shaderF16: boolean;
  readonly subgroups: boolean;
  /** The adapter's smallest subgroup size where it has subgroups: 4 (WebGPU's minimum) where not reported. */
  readonly subgroupMinSize: number;
  readonly timestampQuery: boolean;
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly adapterDescription: string;
  /**
   * An upper bound on the memory the device can allocate, where one is known: a CPU adapter (SwiftShader,
   * a fallback adapter) allocates system memory, which Node and Chromium report. Real GPUs report none
   * through WebGPU; LoadOptions.maxGpuBytes sets one.
   */
  readonly memoryBudgetBytes: number | undefined;
}

/** Finds WebGPU in a browser or worker; Node callers pass their own GPU (see src/gpu/node.ts). */
export function browserGpu(): GPU {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) {
    throw new WebGPUUnavailableError(
      'WebGPU is not available in this browser. Use a recent Chrome or Edge (113+), Safari 26+, or Firefox 141+ ' +
        'on Windows; on Linux start Chrome with --enable-unsafe-webgpu.',
    );
  }
  return gpu;
}

function isCpuAdapter(info: GPUAdapterInfo | undefined): boolean {
  const text = [info?.vendor, info?.architecture, info?.device, info?.description].join(' ');
  return Boolean((info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter) || /swiftshader|llvmpipe|lavapipe|software/i.test(text);
}

let systemMemory: number | undefined;

/** The machine's memory in bytes, for CPU adapters' budget: set by tri-webgpu/node (os.totalmem()). */
export function setSystemMemory(bytes: number): void {
  systemMemory = bytes;
}

/**
 * The machine's memory: what tri-webgpu/node set, else navigator.deviceMemory (GiB, rounded down by
 * browsers). No `node:os` import here: browser bundles of this module must not name Node builtins.
 */
function systemMemoryBytes(): number | undefined {
  if (systemMemory !== undefined) return systemMemory;
  const gib = (globalThis.navigator as { deviceMemory?: number } | undefined)?.deviceMemory;
  return gib ? gib * 2 ** 30 : undefined;
}

/** Bind groups kept per context before the cache starts over. */
const BIND_GROUP_CACHE_LIMIT = 8192;

/**
 * A node of a key trie: a cache keyed by a sequence of values (objects by identity, numbers and interned
 * strings by value) walked one Map lookup per value, so the hot path builds no string key and allocates
 * nothing on a hit. Measured in Node: a cached bind-group lookup 0.28 µs (building the string key alone
 * took 0.40 µs); a pipeline lookup 0.06 µs. Small next to the WebGPU calls themselves (bench/host-cost.ts).
 */
interface TrieNode<V> {
  value?: V;
  next?: Map<unknown, TrieNode<V>>;
}

function child<V>(node: TrieNode<V>, key: unknown): TrieNode<V> {
  node.next ??= new Map();
  let next = node.next.get(key);
  if (!next) node.next.set(key, (next = {}));
  return next;
}

/** A resource of a bind group: binding i of a dispatch. */
export type BufferResource = { buffer: GPUBuffer; offset?: number; size?: number };

export class GpuContext {
  readonly device: GPUDevice;
  readonly capabilities: GpuCapabilities;
  private readonly pipelines = new Map<string, GPUComputePipeline>();
  /** Pipelines by kernel code, then by each constant's name and value in the caller's order. */
  private readonly pipelineTrie: TrieNode<GPUComputePipeline> = {};
  /** Bind groups by pipeline and exact resources: a decode step binds the same buffers at the same uniform slots every time. */
  private bindGroupTrie: TrieNode<GPUBindGroup> = {};
  private bindGroupCount = 0;
  private readonly stagingBuffers = new Map<number, GPUBuffer[]>();
  private lostReason: string | undefined;
  /**
   * Settles with the reason when the device is lost, including by destroy(): an app that holds a model
   * idle learns of a lost GPU (driver reset, GPU process crash) before the next request fails.
   */
  readonly lost: Promise<{ reason: string; message: string }>;
  private firstError: string | undefined;

  private constructor(device: GPUDevice, capabilities: GpuCapabilities) {
    this.device = device;
    this.capabilities = capabilities;
    this.lost = device.lost.then((info) => {
      this.lostReason = `${info.reason}: ${info.message}`;
      return { reason: String(info.reason), message: info.message };
    });
    // Validation and out-of-memory errors surface here; checkHealthy() turns them into exceptions so a
    // broken dispatch can never pass as a (fast, wrong) result.
    device.addEventListener('uncapturederror', (event) => {
      this.firstError ??= (event as GPUUncapturedErrorEvent).error.message;
    });
  }

  static async create(gpu: GPU = browserGpu(), options: { powerPreference?: GPUPowerPreference } = {}): Promise<GpuContext> {
    const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
    if (!adapter) throw new WebGPUUnavailableError('WebGPU is present but no GPU adapter is available (blocklisted driver or GPU disabled).', { reason: 'no-adapter' });
    const wanted: GPUFeatureName[] = ['shader-f16', 'subgroups', 'timestamp-query'];
    const requiredFeatures = wanted.filter((feature) => adapter.features.has(feature));
    const limits = adapter.limits;
    let device: GPUDevice;
    try {
      device = await adapter.requestDevice({
        requiredFeatures,
        // The default binding limit (128 MiB) is far below what weights need; ask for what the adapter has.
        requiredLimits: {
          maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
          maxBufferSize: limits.maxBufferSize,
          maxComputeWorkgroupStorageSize: limits.maxComputeWorkgroupStorageSize,
        },
      });
    } catch (error) {
      throw new WebGPUUnavailableError(`the GPU adapter refused to create a device: ${(error as Error).message}`, { cause: error, reason: 'no-device' });
    }
    const info = adapter.info;
    return new GpuContext(device, {
      shaderF16: requiredFeatures.includes('shader-f16'),
      subgroups: requiredFeatures.includes('subgroups'),
      subgroupMinSize: (info as { subgroupMinSize?: number } | undefined)?.subgroupMinSize ?? 4,
      timestampQuery: requiredFeatures.includes('timestamp-query'),
      maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize,
      maxBufferSize: device.limits.maxBufferSize,
      maxComputeWorkgroupsPerDimension: device.limits.maxComputeWorkgroupsPerDimension,
      adapterDescription: [info?.vendor, info?.architecture, info?.device, info?.description].filter(Boolean).join(' ') || 'unknown adapter',
      memoryBudgetBytes: isCpuAdapter(info) ? systemMemoryBytes() : undefined,
    });
  }

  /** Throws if the device was lost or any GPU error was reported since creation. */
  checkHealthy(): void {
    if (this.lostReason !== undefined) throw new DeviceLostError(`the GPU device was lost (${this.lostReason}); reload the model`);
    if (this.firstError !== undefined) throw new TriWebGPUError('GPU_ERROR', `a GPU command failed: ${this.firstError}`);
  }

  /** Compiles (once) the compute pipeline for a shader and its named override constants. */
  pipeline(label: string, code: string, constants: Record<string, number> = {}): GPUComputePipeline {
    // Found by the code and the constants in the caller's order (another order only compiles a duplicate).
    let node = child(this.pipelineTrie, code);
    for (const name in constants) node = child(child(node, name), constants[name]);
    if (node.value) return node.value;
    const key = `${label}|${JSON.stringify(constants)}`;
    let pipeline = this.pipelines.get(key);
    if (!pipeline) {
      const module = this.device.createShaderModule({ label, code });
      pipeline = this.device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main', constants } });
      this.pipelines.set(key, pipeline);
    }
    node.value = pipeline;
    return pipeline;
  }

  /**
   * A bind group of `pipeline` over the uniform slot `uniform` (binding 0) and `buffers` (bindings 1..),
   * made once and reused: creating one costs ~40 µs in Dawn for Node, about 2/3 of a dispatch's host time
   * (measured with bench/host-cost.ts). At most BIND_GROUP_CACHE_LIMIT are kept (tests make many
   * short-lived buffers).
   */
  bindGroup(pipeline: GPUComputePipeline, uniform: BufferResource, buffers: readonly (GPUBuffer | BufferResource)[]): GPUBindGroup {
    let node = child(child(child(child(this.bindGroupTrie, pipeline), uniform.buffer), uniform.offset ?? 0), uniform.size);
    for (const binding of buffers) {
      if ('buffer' in binding) node = child(child(child(node, binding.buffer), binding.offset ?? 0), binding.size);
      else node = child(child(child(node, binding), 0), undefined);
    }
    if (node.value) return node.value;
    if (this.bindGroupCount >= BIND_GROUP_CACHE_LIMIT) {
      this.bindGroupTrie = {};
      this.bindGroupCount = 0;
      return this.bindGroup(pipeline, uniform, buffers);
    }
    node.value = this.createBindGroup(pipeline, uniform, buffers);
    this.bindGroupCount++;
    return node.value;
  }

  /** A new bind group, as bindGroup() makes them, for callers that keep it themselves. */
  createBindGroup(pipeline: GPUComputePipeline, uniform: BufferResource, buffers: readonly (GPUBuffer | BufferResource)[]): GPUBindGroup {
    const entries = [uniform, ...buffers].map((resource, binding) => ({ binding, resource: 'buffer' in resource ? resource : { buffer: resource } }));
    return this.device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries });
  }

  /**
   * Runs `allocate` (buffer creation) and turns a GPU out-of-memory or validation failure into
   * GpuOutOfMemoryError after calling `release`, so nothing stays allocated.
   */
  async allocateOrThrow<T>(requiredBytes: number, allocate: () => T, release: () => void): Promise<T> {
    this.device.pushErrorScope('out-of-memory');
    this.device.pushErrorScope('validation');
    let result: { value: T } | { error: unknown };
    try {
      result = { value: allocate() };
    } catch (error) {
      result = { error };
    }
    const validation = await this.device.popErrorScope();
    const memory = await this.device.popErrorScope();
    const failure = memory ?? validation;
    if ('error' in result || failure) release();
    if ('error' in result) throw result.error;
    if (failure) throw new GpuOutOfMemoryError(requiredBytes, failure.message);
    return result.value;
  }

  createBuffer(label: string, byteLength: number, usage: GPUBufferUsageFlags = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST): GPUBuffer {
    checkBufferSize(this.capabilities, label, byteLength);
    // WebGPU buffer sizes must be multiples of 4 for storage use; zero-size buffers are not bindable.
    return this.device.createBuffer({ label, size: Math.max(16, Math.ceil(byteLength / 4) * 4), usage });
  }

  /** Uploads data to a new storage buffer. */
  upload(label: string, data: ArrayBufferView<ArrayBuffer>): GPUBuffer {
    const buffer = this.createBuffer(label, data.byteLength);
    this.device.queue.writeBuffer(buffer, 0, data.buffer, data.byteOffset, data.byteLength);
    return buffer;
  }

  /** Copies `byteLength` bytes of `source` back to the CPU (one round trip: use sparingly). */
  async readBack(source: GPUBuffer, byteLength: number, sourceOffset = 0): Promise<ArrayBuffer> {
    const size = Math.ceil(byteLength / 4) * 4;
    // Staging buffers are reused (decode reads back 4 bytes per token); each is in one readback at a time.
    const free = this.stagingBuffers.get(size) ?? [];
    this.stagingBuffers.set(size, free);
    const staging = free.pop() ?? this.device.createBuffer({ label: 'readback', size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    try {
      const encoder = this.device.createCommandEncoder();
      encoder.copyBufferToBuffer(source, sourceOffset, staging, 0, size);
      this.device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const copy = staging.getMappedRange().slice(0, byteLength);
      staging.unmap();
      free.push(staging);
      this.checkHealthy();
      return copy;
    } catch (error) {
      staging.destroy();
      // Chromium rejects a pending mapAsync (AbortError) before it reports the device lost: give the
      // loss a moment to arrive, so the caller sees DeviceLostError rather than a bare AbortError.
      await Promise.race([this.lost, new Promise((resolve) => setTimeout(resolve, 1000))]);
      this.checkHealthy();
      throw new TriWebGPUError('GPU_ERROR', `reading results back from the GPU failed: ${(error as Error).message}`, { cause: error });
    }
  }

  destroy(): void {
    this.pipelines.clear();
    this.stagingBuffers.clear();
    this.device.destroy();
  }
}

/** Refuses a buffer the device cannot bind, instead of letting it fail silently at dispatch. */
export function checkBufferSize(capabilities: GpuCapabilities, label: string, byteLength: number): void {
  const limit = Math.min(capabilities.maxStorageBufferBindingSize, capabilities.maxBufferSize);
  if (byteLength > limit) {
    throw new GpuLimitError(
      `${label} needs ${(byteLength / 2 ** 20).toFixed(1)} MiB in one buffer but this GPU binds at most ` +
        `${(limit / 2 ** 20).toFixed(1)} MiB; use a quantized format or a GPU with larger limits`,
    );
  }
}
