// Typed errors: every failure a user can cause (bad files, missing WebGPU, too little memory) gets
// its own class with a stable `code`, and a message that names the file/tensor and says what to do.

export class TriWebGPUError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A safetensors file whose header or layout is invalid (truncated, bad JSON, bad offsets, ...). */
export class SafetensorsFormatError extends TriWebGPUError {
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
  readonly file: string;
  constructor(file: string, where: string, options?: { cause?: unknown }) {
    super('MODEL_FILE_MISSING', `${file} is missing from ${where}`, options);
    this.file = file;
  }
}

/** A file could be fetched but not read as expected (HTTP error, server ignores Range, short read). */
export class ModelFileReadError extends TriWebGPUError {
  readonly file: string;
  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super('MODEL_FILE_READ', `${file}: ${problem}`, options);
    this.file = file;
  }
}

/** The checkpoint is valid but not something this runtime can run. */
export class UnsupportedModelError extends TriWebGPUError {
  constructor(message: string) {
    super('UNSUPPORTED_MODEL', message);
  }
}

/** tokenizer.json / tokenizer_config.json / chat template problems. */
export class TokenizerError extends TriWebGPUError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('TOKENIZER', message, options);
  }
}

/** navigator.gpu is missing or no adapter could be obtained. */
export class WebGPUUnavailableError extends TriWebGPUError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('WEBGPU_UNAVAILABLE', message, options);
  }
}

/** A buffer or dispatch would exceed a device limit; refused before it can fail silently. */
export class GpuLimitError extends TriWebGPUError {
  constructor(message: string) {
    super('GPU_LIMIT', message);
  }
}

/** The GPU device was lost (driver reset, tab backgrounded on mobile, out of memory). */
export class DeviceLostError extends TriWebGPUError {
  constructor(message: string) {
    super('DEVICE_LOST', message);
  }
}

/** The prompt does not fit in the model's context window. */
export class ContextOverflowError extends TriWebGPUError {
  constructor(promptTokens: number, contextLength: number) {
    super(
      'CONTEXT_OVERFLOW',
      `prompt has ${promptTokens} tokens but the context holds ${contextLength}; shorten the prompt`,
    );
  }
}

/** The GPU could not allocate the model's buffers; raised before any weight is downloaded. */
export class GpuOutOfMemoryError extends TriWebGPUError {
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
  constructor(message: string) {
    super('INVALID_REQUEST', message);
  }
}
