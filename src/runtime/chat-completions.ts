// The OpenAI-style surface many apps already speak: engine.chat.completions.create({ messages, stream }).
// A thin mapping onto TriEngine.generate (same scheduler, same sampling); field names follow OpenAI's.
import type { ChatMessage } from '../text/tokenizer.ts';
import type { FinishReason, GenerateOptions, GenerationChunk, GenerationResult, Prompt } from './engine.ts';

/** What chat completions need of an engine: TriEngine, or WorkerEngine across a worker boundary. */
export interface CompletionEngine {
  generate(prompt: Prompt, options?: GenerateOptions): AsyncGenerator<GenerationChunk, GenerationResult>;
  complete(prompt: Prompt, options?: GenerateOptions): Promise<GenerationResult>;
}

export interface ChatCompletionRequest {
  messages: readonly ChatMessage[];
  stream?: boolean;
  max_tokens?: number;
  temperature?: number;
  top_p?: number;
  /** Not in OpenAI's API; as in vLLM and llama.cpp's server. */
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  seed?: number;
  stop?: string | readonly string[];
  /** Aborts the request (finish_reason 'abort'). */
  signal?: AbortSignal;
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: [{ index: 0; message: { role: 'assistant'; content: string }; finish_reason: FinishReason }];
  usage: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: [{ index: 0; delta: { role?: 'assistant'; content?: string }; finish_reason: FinishReason | null }];
  /** Only on the last chunk. */
  usage?: ChatCompletion['usage'];
}

let nextId = 1;

export class ChatCompletions {
  private readonly engine: CompletionEngine;
  private readonly model: string;

  constructor(engine: CompletionEngine, model: string) {
    this.engine = engine;
    this.model = model;
  }

  create(request: ChatCompletionRequest & { stream: true }): AsyncIterable<ChatCompletionChunk>;
  create(request: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
  create(request: ChatCompletionRequest): AsyncIterable<ChatCompletionChunk> | Promise<ChatCompletion> {
    const options: GenerateOptions = {
      maxNewTokens: request.max_tokens,
      temperature: request.temperature,
      topP: request.top_p,
      topK: request.top_k,
      minP: request.min_p,
      repetitionPenalty: request.repetition_penalty,
      seed: request.seed,
      stop: typeof request.stop === 'string' ? [request.stop] : request.stop,
      signal: request.signal,
    };
    const id = `chatcmpl-${Date.now().toString(36)}-${nextId++}`;
    const created = Math.floor(Date.now() / 1000);
    if (request.stream) return this.stream(request.messages, options, id, created);
    return this.engine.complete(request.messages, options).then((result) => ({
      id, object: 'chat.completion', created, model: this.model,
      choices: [{ index: 0, message: { role: 'assistant', content: result.text }, finish_reason: result.finishReason }],
      usage: usage(result),
    }));
  }

  private async *stream(messages: readonly ChatMessage[], options: GenerateOptions, id: string, created: number): AsyncGenerator<ChatCompletionChunk> {
    const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finishReason: FinishReason | null): ChatCompletionChunk => ({
      id, object: 'chat.completion.chunk', created, model: this.model, choices: [{ index: 0, delta, finish_reason: finishReason }],
    });
    const generation = this.engine.generate(messages, options);
    let step = await generation.next();
    yield chunk({ role: 'assistant' }, null);
    while (!step.done) {
      if (step.value.text) yield chunk({ content: step.value.text }, null);
      step = await generation.next();
    }
    yield { ...chunk({}, step.value.finishReason), usage: usage(step.value) };
  }
}

function usage(result: GenerationResult): ChatCompletion['usage'] {
  const { promptTokens, completionTokens } = result.usage;
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}
