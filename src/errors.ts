// Typed errors: every failure a user can cause (bad files, missing WebGPU, too little memory) gets
// its own class with a stable `code`, and a message that names the file/tensor and says what to do.
// Names are string literals, not `new.target.name`: an app's minifier renames classes ("n", "d"), and
// error.name is what logs and error reporters show. The worker protocol sends the code.

export class TriWebGPUError extends Error {
  override name = 'TriWebGPUError';
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A safetensors file whose header or layout is invalid (truncated, bad JSON, bad offsets, ...). */
export class SafetensorsFormatError extends TriWebGPUError {
  override name = 'SafetensorsFormatError';
  readonly file: string;
  readonly tensor: string | undefined;
  constructor(file: string, problem: string, tensor?: string) {
    super('SAFETENSORS_FORMAT', `${file}${tensor ? ` (tensor "${tensor}")` : ''}: ${problem}`);
    this.file = file;
    this.tensor = tensor;
  }
}

/** A file the model needs (config, shard named by the index, tokenizer) is not there. */
export class ModelFileMissingError extends TriWebGPUError {
  override name = 'ModelFileMissingError';
  readonly file: string;
  constructor(file: string, where: string, options?: { cause?: unknown }) {
    super('MODEL_FILE_MISSING', `${file} is missing from ${where}`, options);
    this.file = file;
  }
}

/** A file could be fetched but not read as expected (HTTP error, server ignores Range, short read). */
export class ModelFileReadError extends TriWebGPUError {
  override name = 'ModelFileReadError';
  readonly file: string;
  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super('MODEL_FILE_READ', `${file}: ${problem}`, options);
    this.file = file;
  }
}

/** The checkpoint is valid but not something this runtime can run. */
export class UnsupportedModelError extends TriWebGPUError {
  override name = 'UnsupportedModelError';
  constructor(message: string) {
    super('UNSUPPORTED_MODEL', message);
  }
}

/** tokenizer.json / tokenizer_config.json / chat template problems. */
export class TokenizerError extends TriWebGPUError {
  override name = 'TokenizerError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENIZER', message, options);
  }
}

/** navigator.gpu is missing or no adapter could be obtained. */
export class WebGPUUnavailableError extends TriWebGPUError {
  override name = 'WebGPUUnavailableError';
  /**
   * What is missing, so an app can say what to do: the API itself (another browser), an adapter (GPU
   * blocklisted or hardware acceleration off), or a device (the adapter refused the limits we need).
   */
  readonly reason: 'no-webgpu' | 'no-adapter' | 'no-device';
  constructor(message: string, options?: { cause?: unknown; reason?: 'no-webgpu' | 'no-adapter' | 'no-device' }) {
    super('WEBGPU_UNAVAILABLE', message, options);
    this.reason = options?.reason ?? 'no-webgpu';
  }
}

/** A buffer or dispatch would exceed a device limit; refused before it can fail silently. */
export class GpuLimitError extends TriWebGPUError {
  override name = 'GpuLimitError';
  constructor(message: string) {
    super('GPU_LIMIT', message);
  }
}

/** The GPU device was lost (driver reset, tab backgrounded on mobile, out of memory). */
export class DeviceLostError extends TriWebGPUError {
  override name = 'DeviceLostError';
  constructor(message: string) {
    super('DEVICE_LOST', message);
  }
}

/** The prompt does not fit in the model's context window. */
export class ContextOverflowError extends TriWebGPUError {
  override name = 'ContextOverflowError';
  constructor(promptTokens: number, contextLength: number) {
    super(
      'CONTEXT_OVERFLOW',
      `prompt has ${promptTokens} tokens but the context holds ${contextLength}; shorten the prompt`,
    );
  }
}

/** The GPU could not allocate the model's buffers; raised before any weight is downloaded. */
export class GpuOutOfMemoryError extends TriWebGPUError {
  override name = 'GpuOutOfMemoryError';
  readonly requiredBytes: number;
  constructor(requiredBytes: number, detail: string) {
    super(
      'GPU_OUT_OF_MEMORY',
      `the GPU could not allocate ${(requiredBytes / 2 ** 30).toFixed(2)} GiB for this model (${detail}); ` +
        'choose a smaller weight format (q4), a shorter context, or close other GPU-heavy tabs',
    );
    this.requiredBytes = requiredBytes;
  }
}

/** A request setting that makes no sense (e.g. topP = 0); nothing was run. */
export class InvalidRequestError extends TriWebGPUError {
  override name = 'InvalidRequestError';
  constructor(message: string) {
    super('INVALID_REQUEST', message);
  }
}

/** The KV cache has no free page for a new sequence or token; nothing was changed. */
export class KvCacheFullError extends TriWebGPUError {
  override name = 'KvCacheFullError';
  constructor(needed: number, available: number) {
    super('KV_CACHE_FULL', `the KV cache needs ${needed} more page(s) but only ${available} are free; finish or abort a sequence, or load with a longer context`);
  }
}

/** The engine was disposed (by `engine.dispose()`) while this call ran or before it was made. */
export class EngineDisposedError extends TriWebGPUError {
  override name = 'EngineDisposedError';
  constructor(message = 'the engine was disposed; load a model again to generate') {
    super('ENGINE_DISPOSED', message);
  }
}

/** A downloaded or stored model file is not what its manifest says (size or SHA-256), even after a retry. */
export class ModelIntegrityError extends TriWebGPUError {
  override name = 'ModelIntegrityError';
  readonly file: string;
  constructor(file: string, problem: string) {
    super('MODEL_INTEGRITY', `${file}: ${problem}; the download was corrupted or the file changed; load again, or clear the model cache`);
    this.file = file;
  }
}

/** The browser's storage quota cannot hold the download; raised before it starts. */
export class StorageQuotaError extends TriWebGPUError {
  override name = 'StorageQuotaError';
  readonly requiredBytes: number;
  readonly availableBytes: number;
  constructor(requiredBytes: number, availableBytes: number) {
    super(
      'STORAGE_QUOTA',
      `this model needs ${(requiredBytes / 2 ** 30).toFixed(2)} GiB of browser storage but only ${(availableBytes / 2 ** 30).toFixed(2)} GiB is free; ` +
        'delete cached models (listCachedModels / deleteCachedModel), free disk space, or load with cache: false',
    );
    this.requiredBytes = requiredBytes;
    this.availableBytes = availableBytes;
  }
}

/** Evaluation data that cannot be used as it is: a missing column, an answer outside A–D, unmatched ids. */
export class EvalDataError extends TriWebGPUError {
  override name = 'EvalDataError';
  readonly file: string;
  /** 1-based data row (not counting a CSV header), when one row is at fault. */
  readonly row: number | undefined;
  constructor(file: string, row: number | undefined, problem: string) {
    super('EVAL_DATA', `${file}${row === undefined ? '' : `, row ${row}`}: ${problem}`);
    this.file = file;
    this.row = row;
  }
}
