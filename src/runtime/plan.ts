// What loading a model will take, known before any weight byte moves: bytes to download (and already
// cached), GPU memory by buffer group against the device's limits, browser storage against its quota,
// and whether it fits, with the reasons when not. TriEngine.plan returns it; TriEngine.load refuses with
// the matching typed error (GpuLimitError, GpuOutOfMemoryError, StorageQuotaError) before downloading.
import type { GpuContext } from '../gpu/context.ts';
import { ArtifactWeights } from '../model/artifact.ts';
import type { LlamaSpec } from '../model/config.ts';
import { gpuLlamaMemoryPlan, type KvCacheFormat, weightBytesRead } from '../model/llama-gpu.ts';
import { matrixPartLimit } from '../model/gpu-weights.ts';
import { visionGpuBytes, visionMatrixFormat } from '../model/vision-gpu.ts';
import type { OpenedWeights } from '../model/open.ts';
import type { WeightFormatOptions } from '../model/quant.ts';

export interface LoadSettings {
  weights: WeightFormatOptions;
  contextLength: number;
  kvCache: KvCacheFormat;
  maxSequences: number | undefined;
}

export interface LoadPlan {
  /** A pre-converted artifact (FORMAT.md), or a checkpoint converted at load. */
  kind: 'artifact' | 'checkpoint';
  spec: LlamaSpec;
  settings: LoadSettings;
  /** Weight bytes the load reads, and how many of them the browser cache already holds. */
  downloadBytes: number;
  cachedBytes: number;
  /** GPU bytes by group, and in all. */
  gpuBytes: { weights: number; kvCache: number; activations: number; total: number };
  limits: { maxBufferSize: number; maxStorageBufferBindingSize: number; memoryBudgetBytes: number | undefined };
  /** The origin's storage (navigator.storage.estimate()), where the browser reports it. */
  storage: { usage: number; quota: number } | undefined;
  fits: boolean;
  /** Why not, in words a person can act on. */
  reasons: string[];
}

const GiB = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

export function planLoad(
  opened: OpenedWeights, settings: LoadSettings, gpu: GpuContext,
  cache: { cachedBytes: number; storage: { usage: number; quota: number } | undefined; keepBytes?: number } | undefined, maxGpuBytes: number | undefined,
): LoadPlan {
  const artifact = opened.weights instanceof ArtifactWeights ? opened.weights : undefined;
  const { capabilities } = gpu;
  const limit = Math.min(capabilities.maxStorageBufferBindingSize, capabilities.maxBufferSize);
  const memory = gpuLlamaMemoryPlan(opened.spec, settings.contextLength, {
    maxSequences: settings.maxSequences, kvCache: settings.kvCache, weights: settings.weights,
    bindingLimit: artifact ? artifact.manifest.partBytes : matrixPartLimit(gpu),
  });
  const group = (label: string) => (/^(embed|lmHead|layers\.)/.test(label) ? 'weights' : /^[kv]Cache\./.test(label) ? 'kvCache' : 'activations');
  // A vision model's tower and projector count as weights.
  const visionBytes = opened.vision ? visionGpuBytes(opened.vision.spec, visionMatrixFormat(settings.weights)) : 0;
  const gpuBytes = { weights: visionBytes, kvCache: 0, activations: 0, total: memory.totalBytes + visionBytes };
  for (const { label, bytes } of memory.buffers) gpuBytes[group(label)] += bytes;

  const reasons: string[] = [];
  const tooBig = memory.buffers.find(({ bytes }) => bytes > limit);
  if (tooBig) reasons.push(`${tooBig.label} needs ${GiB(tooBig.bytes)} in one buffer, but this GPU binds at most ${GiB(limit)}: use q4 weights or a GPU with larger limits`);
  const budget = maxGpuBytes ?? capabilities.memoryBudgetBytes;
  if (budget !== undefined && gpuBytes.total > budget) {
    reasons.push(`the GPU buffers need ${GiB(gpuBytes.total)}, more than the ${GiB(budget)} this device can hold: use q4 weights, an f16 KV cache or a shorter context`);
  }
  const downloadBytes = weightBytesRead(opened.spec, opened.weights);
  const cachedBytes = cache?.cachedBytes ?? 0;
  const storage = cache?.storage;
  // A checkpoint's conversion is kept beside its cached bytes (keepConverted) until they are dropped.
  const toStore = Math.max(0, downloadBytes - cachedBytes) + (cache?.keepBytes ?? 0);
  if (storage && toStore > storage.quota - storage.usage) {
    reasons.push(`the download needs ${GiB(toStore)} of browser storage, but only ${GiB(storage.quota - storage.usage)} is free: delete cached models or load with cache: false`);
  }
  return {
    kind: artifact ? 'artifact' : 'checkpoint', spec: opened.spec, settings, downloadBytes, cachedBytes, gpuBytes,
    limits: { maxBufferSize: capabilities.maxBufferSize, maxStorageBufferBindingSize: capabilities.maxStorageBufferBindingSize, memoryBudgetBytes: capabilities.memoryBudgetBytes },
    storage, fits: reasons.length === 0, reasons,
  };
}
