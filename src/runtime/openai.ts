// The OpenAI-style surface many apps already speak: engine.chat.completions.create({ messages, stream })
// and engine.completions.create({ prompt }). A thin mapping onto TriEngine.generate (same scheduler, same
// sampling). Request and response shapes follow OpenAI's, so code typed with the `openai` package's
// types compiles against them (test/unit/openai-types.test.ts); every field we cannot honour is refused
// with an InvalidRequestError naming it, never ignored. As in OpenAI's SDK, an aborted request rejects
// (or its stream throws) with an AbortError.
import { InvalidRequestError } from '../errors.ts';
import type { ImageInput } from '../vision/image-input.ts';
import { MAX_TOP_LOGPROBS } from '../ops/log-softmax.ts';
import type { GenerateOptions, Generation, GenerationResult, Prompt, PromptContentPart, PromptMessage, TokenLogprob } from './engine.ts';
import { streamResult } from './stream.ts';

/** What the OpenAI surface needs of an engine: TriEngine, or WorkerEngine across a worker boundary. */
export interface CompletionEngine {
  generate(prompt: Prompt, options?: GenerateOptions): Generation;
}

/**
 * A content part: `text`, and with a vision (llava) model `image_url` ({ url }: http(s) or data: URL) or
 * `image` (a Blob, ImageBitmap, canvas, ImageData or decoded pixels); audio and files are refused by name.
 */
export interface ChatCompletionContentPart {
  type: 'text' | 'image_url' | 'image' | (string & {});
  text?: string;
  image_url?: { url: string; detail?: string } | string;
  image?: ImageInput;
}

export interface ChatCompletionMessageParam {
  /** 'developer' is OpenAI's newer name for 'system'. Tool and function messages are refused. */
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool' | 'function' | (string & {});
  content?: string | readonly ChatCompletionContentPart[] | null;
  name?: string;
}

/** Fields shared by chat.completions and completions requests (nullable where OpenAI's are). */
interface CommonRequest {
  /** Informational: the engine runs the model it loaded. */
  model?: string;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  /** Not in OpenAI's API; as in vLLM and llama.cpp's server. */
  top_k?: number | null;
  min_p?: number | null;
  repetition_penalty?: number | null;
  /** −2..2: subtracted once per earlier occurrence of a token in the completion. */
  frequency_penalty?: number | null;
  /** −2..2: subtracted once from every token already in the completion. */
  presence_penalty?: number | null;
  seed?: number | null;
  stop?: string | readonly string[] | null;
  /** Only 1. */
  n?: number | null;
  /** An end-user id (OpenAI uses it for abuse monitoring); accepted and unused. */
  user?: string;
  /** Aborts the request; OpenAI's SDK takes it in the second argument, which works too. */
  signal?: AbortSignal;
}

export interface ChatCompletionRequest extends CommonRequest {
  messages: readonly ChatCompletionMessageParam[];
  max_completion_tokens?: number | null;
  /** Each output token's log-probability (computed on the GPU, before penalties and temperature). */
  logprobs?: boolean | null;
  /** With logprobs: the 0..20 most likely tokens at each position. */
  top_logprobs?: number | null;
}

export interface CompletionRequest extends CommonRequest {
  /** Text, or token ids. (OpenAI's batches, several prompts in one request, are refused.) */
  prompt: string | readonly number[] | readonly string[] | readonly (readonly number[])[] | null;
  /** Only false. */
  echo?: boolean | null;
  /** Log-probabilities of the output tokens and of the N (0..20) most likely tokens at each position. */
  logprobs?: number | null;
}

/** OpenAI's chat `logprobs`: one entry per output token, with `bytes` the UTF-8 of its decoded text. */
export interface ChatCompletionTokenLogprob {
  token: string;
  logprob: number;
  bytes: number[] | null;
  top_logprobs: { token: string; logprob: number; bytes: number[] | null }[];
}

export interface ChatCompletionLogprobs {
  content: ChatCompletionTokenLogprob[] | null;
  refusal: null;
}

/** OpenAI's (legacy) completion `logprobs`: parallel arrays; text_offset counts UTF-16 units into the text. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

export interface RequestOptions {
  signal?: AbortSignal;
}

export interface CompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
}

export type CompletionFinishReason = 'stop' | 'length';

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: [{ index: 0; message: { role: 'assistant'; content: string; refusal: null }; finish_reason: CompletionFinishReason; logprobs: ChatCompletionLogprobs | null }];
  usage: CompletionUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  /** One choice; empty in the usage chunk that `stream_options.include_usage` adds at the end. */
  choices: { index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: CompletionFinishReason | null; logprobs: ChatCompletionLogprobs | null }[];
  /** Only with `stream_options: { include_usage: true }`: null, then the totals on the last chunk. */
  usage?: CompletionUsage | null;
}

export interface Completion {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  choices: { index: 0; text: string; finish_reason: CompletionFinishReason; logprobs: CompletionLogprobs | null }[];
  usage: CompletionUsage;
}

/** A streamed completion: the same shape, finish_reason null until the last chunk. */
export interface CompletionChunk {
  id: string;
  object: 'text_completion';
  created: number;
  model: string;
  /** One choice; empty in the usage chunk that `stream_options.include_usage` adds at the end. */
  choices: { index: 0; text: string; finish_reason: CompletionFinishReason | null; logprobs: CompletionLogprobs | null }[];
  /** Only with `stream_options: { include_usage: true }`: null, then the totals on the last chunk. */
  usage?: CompletionUsage | null;
}

const COMMON_FIELDS = ['model', 'stream', 'stream_options', 'max_tokens', 'temperature', 'top_p', 'top_k', 'min_p',
  'repetition_penalty', 'frequency_penalty', 'presence_penalty', 'seed', 'stop', 'n', 'user', 'signal'];
const CHAT_FIELDS = new Set([...COMMON_FIELDS, 'messages', 'max_completion_tokens', 'logprobs', 'top_logprobs']);
const COMPLETION_FIELDS = new Set([...COMMON_FIELDS, 'prompt', 'echo', 'logprobs']);

const utf8 = new TextEncoder();

function chatLogprobs(tokens: readonly TokenLogprob[] | undefined): ChatCompletionLogprobs | null {
  if (!tokens) return null;
  return {
    content: tokens.map((token) => ({
      token: token.text, logprob: token.logprob, bytes: [...utf8.encode(token.text)],
      top_logprobs: token.top.map((top) => ({ token: top.text, logprob: top.logprob, bytes: [...utf8.encode(top.text)] })),
    })),
    refusal: null,
  };
}

/** `offset`: where these tokens' text starts in the whole completion. */
function completionLogprobs(tokens: readonly TokenLogprob[] | undefined, offset = 0): CompletionLogprobs | null {
  if (!tokens) return null;
  const text_offset: number[] = [];
  for (const token of tokens) {
    text_offset.push(offset);
    offset += token.text.length;
  }
  return {
    tokens: tokens.map((token) => token.text),
    token_logprobs: tokens.map((token) => token.logprob),
    // Two alternatives that decode to the same text keep the likelier (first) one, as a JSON object must.
    top_logprobs: tokens.map((token) => Object.fromEntries([...token.top].reverse().map((top) => [top.text, top.logprob]))),
    text_offset,
  };
}

let nextId = 1;

/** What both OpenAI-style resources hold: the engine they run on and the model name they report. */
abstract class OpenAiResource {
  protected readonly engine: CompletionEngine;
  protected readonly model: string;

  constructor(engine: CompletionEngine, model: string) {
    this.engine = engine;
    this.model = model;
  }
}

/** `engine.chat.completions`: OpenAI's chat completion API over the engine's chat template. */
export class ChatCompletions extends OpenAiResource {
  create(request: ChatCompletionRequest & { stream: true }, options?: RequestOptions): AsyncIterable<ChatCompletionChunk>;
  create(request: ChatCompletionRequest & { stream?: false | null }, options?: RequestOptions): Promise<ChatCompletion>;
  create(request: ChatCompletionRequest, options?: RequestOptions): AsyncIterable<ChatCompletionChunk> | Promise<ChatCompletion>;
  create(request: ChatCompletionRequest, options: RequestOptions = {}): AsyncIterable<ChatCompletionChunk> | Promise<ChatCompletion> {
    const run = () => {
      checkFields(request, CHAT_FIELDS, 'chat.completions');
      if (request.top_logprobs != null && !request.logprobs) throw new InvalidRequestError('"top_logprobs" needs "logprobs": true');
      const messages = chatMessages(request.messages);
      const logprobs = request.logprobs ? { logprobs: true, topLogprobs: checkTopLogprobs(request.top_logprobs ?? 0, 'top_logprobs') } : {};
      return this.engine.generate(messages, { ...generateOptions(request, options, request.max_completion_tokens), ...logprobs });
    };
    const base = { id: `chatcmpl-${uniqueId()}`, created: Math.floor(Date.now() / 1000), model: request.model ?? this.model };
    const signal = options.signal ?? request.signal;
    if (request.stream) return this.stream(run, base, request.stream_options?.include_usage === true, signal);
    return whole(run, signal).then((result): ChatCompletion => ({
      ...base, object: 'chat.completion',
      choices: [{ index: 0, message: { role: 'assistant', content: result.text, refusal: null }, finish_reason: result.finishReason as CompletionFinishReason, logprobs: chatLogprobs(result.logprobs) }],
      usage: usage(result),
    }));
  }

  private async *stream(run: () => Generation, base: Omit<ChatCompletionChunk, 'object' | 'choices'>, includeUsage: boolean, signal: AbortSignal | undefined): AsyncGenerator<ChatCompletionChunk> {
    const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finishReason: CompletionFinishReason | null, logprobs: ChatCompletionLogprobs | null = null): ChatCompletionChunk => ({
      ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta, finish_reason: finishReason, logprobs }], ...(includeUsage ? { usage: null } : {}),
    });
    const generation = run();
    let first = true;
    for await (const { text, logprobs } of generation) {
      if (first) yield chunk({ role: 'assistant' }, null);
      first = false;
      // A token that completes no character yet still brings its log-probability.
      if (text || logprobs?.length) yield chunk({ content: text }, null, chatLogprobs(logprobs));
    }
    const result = finished(await generation.result, signal);
    if (first) yield chunk({ role: 'assistant' }, null);
    yield chunk({}, result.finishReason);
    if (includeUsage) yield { ...base, object: 'chat.completion.chunk', choices: [], usage: usage(result) };
  }
}

/** `engine.completions`: OpenAI's (legacy) completion API: a raw prompt, no chat template. */
export class Completions extends OpenAiResource {
  create(request: CompletionRequest & { stream: true }, options?: RequestOptions): AsyncIterable<CompletionChunk>;
  create(request: CompletionRequest & { stream?: false | null }, options?: RequestOptions): Promise<Completion>;
  create(request: CompletionRequest, options?: RequestOptions): AsyncIterable<CompletionChunk> | Promise<Completion>;
  create(request: CompletionRequest, options: RequestOptions = {}): AsyncIterable<CompletionChunk> | Promise<Completion> {
    const run = () => {
      checkFields(request, COMPLETION_FIELDS, 'completions');
      if (request.echo) throw new InvalidRequestError('"echo" is not supported; leave it unset or false');
      const { prompt } = request;
      const settings = { ...generateOptions(request, options, undefined), ...(request.logprobs != null ? { logprobs: true, topLogprobs: checkTopLogprobs(request.logprobs, 'logprobs') } : {}) };
      if (typeof prompt === 'string') return this.engine.generate(prompt, settings);
      if (!Array.isArray(prompt) || !prompt.every((id) => typeof id === 'number')) {
        throw new InvalidRequestError('"prompt" must be a string or an array of token ids (one prompt per request)');
      }
      return this.engine.generate({ tokenIds: prompt as readonly number[] }, settings);
    };
    const base = { id: `cmpl-${uniqueId()}`, object: 'text_completion' as const, created: Math.floor(Date.now() / 1000), model: request.model ?? this.model };
    const signal = options.signal ?? request.signal;
    if (request.stream) return this.stream(run, base, request.stream_options?.include_usage === true, signal);
    return whole(run, signal).then((result): Completion => ({
      ...base, choices: [{ index: 0, text: result.text, finish_reason: result.finishReason as CompletionFinishReason, logprobs: completionLogprobs(result.logprobs) }], usage: usage(result),
    }));
  }

  private async *stream(run: () => Generation, base: Omit<CompletionChunk, 'choices'>, includeUsage: boolean, signal: AbortSignal | undefined): AsyncGenerator<CompletionChunk> {
    const chunk = (text: string, finishReason: CompletionFinishReason | null, logprobs: CompletionLogprobs | null = null): CompletionChunk => ({
      ...base, choices: [{ index: 0, text, finish_reason: finishReason, logprobs }], ...(includeUsage ? { usage: null } : {}),
    });
    const generation = run();
    let offset = 0; // of the tokens' text so far, for text_offset
    for await (const { text, logprobs } of generation) {
      if (!text && !logprobs?.length) continue;
      yield chunk(text, null, completionLogprobs(logprobs, offset));
      offset += (logprobs ?? []).reduce((sum, token) => sum + token.text.length, 0);
    }
    const result = finished(await generation.result, signal);
    yield chunk('', result.finishReason);
    if (includeUsage) yield { ...base, choices: [], usage: usage(result) };
  }
}

function checkTopLogprobs(value: unknown, field: string): number {
  if (!Number.isInteger(value) || (value as number) < 0 || (value as number) > MAX_TOP_LOGPROBS) throw new InvalidRequestError(`"${field}" must be a whole number in 0..${MAX_TOP_LOGPROBS} (got ${JSON.stringify(value)})`);
  return value as number;
}

function uniqueId(): string {
  return `${Date.now().toString(36)}-${nextId++}`;
}

function checkFields(request: object, known: ReadonlySet<string>, api: string): void {
  for (const [field, value] of Object.entries(request)) {
    if (known.has(field) || value === undefined || value === null) continue;
    throw new InvalidRequestError(`"${field}" is not supported by tri-webgpu's ${api}.create; remove it`);
  }
}

function chatMessages(messages: readonly ChatCompletionMessageParam[]): PromptMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) throw new InvalidRequestError('"messages" must be a non-empty array');
  return messages.map((message, i) => {
    const where = `messages[${i}]`;
    if (message.role === 'tool' || message.role === 'function') throw new InvalidRequestError(`${where}: role "${message.role}" is not supported (no tool calling)`);
    if (typeof message.role !== 'string') throw new InvalidRequestError(`${where}.role must be a string`);
    for (const field of Object.keys(message)) {
      if (!['role', 'content', 'name'].includes(field) && (message as unknown as Record<string, unknown>)[field] != null) {
        throw new InvalidRequestError(`${where}.${field} is not supported`);
      }
    }
    const { content } = message;
    const role = message.role === 'developer' ? 'system' : message.role;
    if (typeof content === 'string' || content == null) return { role, content: content ?? '' };
    if (!Array.isArray(content)) throw new InvalidRequestError(`${where}.content must be a string or an array of parts`);
    const parts = content.map((part: ChatCompletionContentPart, j): PromptContentPart => {
      if (part?.type === 'text' && typeof part.text === 'string') return { type: 'text', text: part.text };
      if (part?.type === 'image_url') return { type: 'image_url', image_url: part.image_url! }; // the engine checks it (and whether the model sees images)
      if (part?.type === 'image') return { type: 'image', image: part.image! };
      throw new InvalidRequestError(`${where}.content[${j}]: parts of type "${part?.type}" are not supported (text, image_url, image)`);
    });
    // Text-only parts join into one string, as before (templates that expect a string keep working).
    if (parts.every((part) => part.type === 'text')) return { role, content: parts.map((part) => (part as { text: string }).text).join('') };
    return { role, content: parts };
  });
}

function generateOptions(request: CommonRequest, options: RequestOptions, maxCompletionTokens: number | null | undefined): GenerateOptions {
  if (request.n != null && request.n !== 1) throw new InvalidRequestError(`"n" must be 1 (got ${request.n}): one completion per request`);
  if (request.max_tokens != null && maxCompletionTokens != null && request.max_tokens !== maxCompletionTokens) {
    throw new InvalidRequestError('give "max_completion_tokens" or "max_tokens", not two different values');
  }
  for (const field of ['frequency_penalty', 'presence_penalty'] as const) {
    const value = request[field];
    if (value != null && !(value >= -2 && value <= 2)) throw new InvalidRequestError(`"${field}" must be between -2 and 2 (got ${value})`);
  }
  const defined = <T>(value: T | null | undefined) => value ?? undefined;
  return {
    maxNewTokens: defined(maxCompletionTokens ?? request.max_tokens),
    temperature: defined(request.temperature),
    topP: defined(request.top_p),
    topK: defined(request.top_k),
    minP: defined(request.min_p),
    repetitionPenalty: defined(request.repetition_penalty),
    frequencyPenalty: defined(request.frequency_penalty),
    presencePenalty: defined(request.presence_penalty),
    seed: defined(request.seed),
    stop: typeof request.stop === 'string' ? [request.stop] : defined(request.stop),
    signal: options.signal ?? request.signal,
  };
}

/** Runs a generation to its end (request errors reject). */
async function whole(run: () => Generation, signal: AbortSignal | undefined): Promise<GenerationResult> {
  return finished(await streamResult(run()), signal);
}

/** OpenAI has no 'abort' finish reason: an aborted request fails with the signal's AbortError. */
function finished(result: GenerationResult, signal: AbortSignal | undefined): GenerationResult & { finishReason: CompletionFinishReason } {
  if (result.finishReason === 'abort') throw signal?.reason instanceof Error ? signal.reason : new DOMException('the request was aborted', 'AbortError');
  return result as GenerationResult & { finishReason: CompletionFinishReason };
}

function usage(result: GenerationResult): CompletionUsage {
  const { promptTokens, completionTokens, cachedPromptTokens } = result.usage;
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens, prompt_tokens_details: { cached_tokens: cachedPromptTokens } };
}
