// Messages between WorkerEngine (the page) and serveEngine (the worker). Plain structured-cloneable data.
import type { WeightFormatOptions } from '../model/quant.ts';
import type { AttentionPolicy } from '../kv/documents.ts';
import type { ContinuationScore, GenerateOptions, GenerationChunk, GenerationResult, LoadProgress, PackedDocument, Prompt } from '../runtime/engine.ts';
import type { KvCacheFormat } from '../model/llama-gpu.ts';
import type { LoadPlan } from '../runtime/plan.ts';
import type { SamplingOptions } from '../runtime/sampling.ts';

/** GenerateOptions without the AbortSignal (not cloneable): abort is a message of its own. */
export type WorkerGenerateOptions = Omit<GenerateOptions, 'signal'>;

export interface WorkerLoadOptions {
  contextLength?: number;
  cache?: boolean;
  maxSequences?: number;
  weights?: WeightFormatOptions;
  kvCache?: KvCacheFormat;
  maxGpuBytes?: number;
  /** As TriEngine's LoadOptions: the decode loop and the kernel choices timed at load. */
  stepsInFlight?: 1 | 2;
  tiledPrefill?: boolean;
  subgroups?: boolean;
}

/** A model folder URL (absolute), or the files of a folder the user picked (Files clone across). */
export type WorkerModelSource = string | File[];

export type ToWorker =
  | { type: 'load'; loadId: number; source: WorkerModelSource; options: WorkerLoadOptions }
  | { type: 'plan'; loadId: number; source: WorkerModelSource; options: WorkerLoadOptions }
  | { type: 'generate'; id: number; prompt: Prompt; options: WorkerGenerateOptions }
  | { type: 'generatePacked'; id: number; documents: PackedDocument[]; policy: AttentionPolicy; options: WorkerGenerateOptions }
  | { type: 'score'; id: number; prompt: Prompt; continuations: (string | { tokenIds: readonly number[] })[]; addSpecialTokens?: boolean }
  | { type: 'abort'; id: number }
  | { type: 'abortLoad'; loadId: number }
  | { type: 'dispose' };

export interface SerializedError {
  name: string;
  code: string | undefined;
  message: string;
  /** A typed error's own fields (file, tensor, requiredBytes, ...). */
  fields?: Record<string, unknown>;
}

export type FromWorker =
  | ({ type: 'progress'; loadId: number } & LoadProgress)
  | { type: 'loaded'; loadId: number; weights: WeightFormatOptions; contextLength: number; hasChatTemplate: boolean; acceptsImages: boolean; generationDefaults: SamplingOptions }
  | { type: 'planned'; loadId: number; plan: LoadPlan }
  | { type: 'loadError'; loadId: number; error: SerializedError }
  /** The loaded model's GPU device was lost (not by dispose): every later call fails until a new load. */
  | { type: 'deviceLost'; message: string }
  | { type: 'chunk'; id: number; chunk: GenerationChunk }
  | { type: 'done'; id: number; result: GenerationResult }
  | { type: 'scored'; id: number; scores: ContinuationScore[] }
  | { type: 'error'; id: number; error: SerializedError };
