// The OpenAI-style surface on tri-tiny (Node): requests typed with the `openai` package's own types
// compile and reproduce the goldens, responses fit OpenAI's response types, every unsupported field is
// refused by name, aborts reject as in OpenAI's SDK, and frequency/presence penalties on the GPU give the
// ids of a CPU-reference decode (src/reference/llama.ts + referenceSample) with the same penalties.
import type OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InvalidRequestError, TriEngine } from '../../src/index.ts';
import { loadLlamaWeightsF32 } from '../../src/model/llama-weights.ts';
import { NodeModelFiles, getNodeGpu } from '../../src/node.ts';
import { ReferenceLlama } from '../../src/reference/llama.ts';
import { logProbabilities, topLogprobs } from '../../src/reference/log-softmax.ts';
import { referenceSample, samplingConfig } from '../../src/runtime/sampling.ts';
import { openModel } from '../../src/model/open.ts';
import { modelDir, triTinyGolden } from '../fixtures.ts';

let engine: TriEngine;
const golden = Object.fromEntries(triTinyGolden().map((c) => [c.name, c]));
const chat = golden.chat_ko!;
const messages = chat.messages as OpenAI.Chat.ChatCompletionMessageParam[];

beforeAll(async () => {
  engine = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), { gpu: await getNodeGpu() });
});
afterAll(() => engine.dispose());

describe('chat.completions with OpenAI-typed requests', () => {
  it('accepts OpenAI.ChatCompletionCreateParamsNonStreaming and answers in OpenAI.ChatCompletion shape', async () => {
    const request: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = {
      model: 'tri-tiny', messages, max_completion_tokens: 48, temperature: 0, seed: 1, n: 1, stop: null, user: 'u1',
    };
    const completion: OpenAI.Chat.ChatCompletion = await engine.chat.completions.create(request);
    expect(completion.model).toBe('tri-tiny');
    expect(completion.choices[0]!.message.content).toBe(chat.decoded_text);
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    expect(completion.usage?.completion_tokens).toBe(chat.greedy_ids.length);
  });

  it('streams OpenAI.ChatCompletionCreateParamsStreaming with include_usage: a final chunk with empty choices and the usage', async () => {
    const request: OpenAI.Chat.ChatCompletionCreateParamsStreaming = { model: 'tri-tiny', messages, max_tokens: 48, stream: true, stream_options: { include_usage: true } };
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of engine.chat.completions.create(request)) chunks.push(chunk);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    expect(last.usage).toMatchObject({ prompt_tokens: chat.prompt_ids.length, completion_tokens: chat.greedy_ids.length });
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('')).toBe(chat.decoded_text);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('stop');
  });

  it('takes text content parts and the developer role (as system)', async () => {
    const parts: OpenAI.Chat.ChatCompletionMessageParam[] = messages.map((message) => ({
      role: message.role === 'system' ? 'developer' : message.role,
      content: [{ type: 'text', text: String(message.content).slice(0, 3) }, { type: 'text', text: String(message.content).slice(3) }],
    }) as OpenAI.Chat.ChatCompletionMessageParam);
    const completion = await engine.chat.completions.create({ model: 'tri-tiny', messages: parts, max_tokens: 48 });
    expect(completion.choices[0].message.content).toBe(chat.decoded_text);
  });

  it('refuses what it cannot honour with a typed error naming the field, and keeps working', async () => {
    const refused: [Partial<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming>, RegExp][] = [
      [{ n: 2 }, /"n" must be 1/],
      [{ tools: [{ type: 'function', function: { name: 'f' } }] }, /"tools" is not supported/],
      [{ response_format: { type: 'json_object' } }, /"response_format" is not supported/],
      [{ top_logprobs: 3 }, /"top_logprobs" needs "logprobs": true/],
      [{ logprobs: true, top_logprobs: 21 }, /"top_logprobs" must be a whole number in 0\.\.20/],
      [{ logit_bias: { 1: 5 } }, /"logit_bias" is not supported/],
      [{ frequency_penalty: 3 }, /"frequency_penalty" must be between -2 and 2/],
      [{ max_tokens: 5, max_completion_tokens: 6 }, /max_completion_tokens/],
      [{ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] }, /messages\[0\]\.content\[0\].*image_url/],
      [{ messages: [{ role: 'tool', content: 'x', tool_call_id: '1' }] }, /role "tool"/],
    ];
    for (const [fields, message] of refused) {
      const request = { model: 'tri-tiny', messages, ...fields } as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
      await expect(engine.chat.completions.create(request)).rejects.toSatisfy((error: unknown) => error instanceof InvalidRequestError && message.test(error.message));
    }
    const stream = engine.chat.completions.create({ messages, stream: true, n: 3 });
    await expect((async () => { for await (const chunk of stream) void chunk; })()).rejects.toBeInstanceOf(InvalidRequestError);
    const again = await engine.chat.completions.create({ messages, max_tokens: 48 });
    expect(again.choices[0].message.content).toBe(chat.decoded_text);
  });

  it('rejects with an AbortError when aborted (signal in the second argument, as in OpenAI\'s SDK)', async () => {
    const controller = new AbortController();
    const stream = engine.chat.completions.create({ messages, max_tokens: 48, stream: true }, { signal: controller.signal });
    const seen: string[] = [];
    const reading = (async () => {
      for await (const chunk of stream) {
        seen.push(chunk.choices[0]?.delta.content ?? '');
        if (seen.length === 2) controller.abort();
      }
    })();
    await expect(reading).rejects.toMatchObject({ name: 'AbortError' });
    const aborted = new AbortController();
    aborted.abort();
    await expect(engine.chat.completions.create({ messages }, { signal: aborted.signal })).rejects.toMatchObject({ name: 'AbortError' });
    expect(engine.schedulerStats.activeSequences).toBe(0);
  });
});

describe('completions (raw prompt)', () => {
  it('continues a raw prompt (text or token ids) with the golden text, whole and streamed', async () => {
    const plain = golden.en_plain!;
    const request: OpenAI.CompletionCreateParamsNonStreaming = { model: 'tri-tiny', prompt: plain.prompt, max_tokens: plain.greedy_ids.length };
    const completion: OpenAI.Completion = await engine.completions.create(request);
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0]!.text).toBe(plain.decoded_text);
    const fromIds = await engine.completions.create({ prompt: plain.prompt_ids, max_tokens: plain.greedy_ids.length });
    expect(fromIds.choices[0]!.text).toBe(plain.decoded_text);
    let streamed = '';
    for await (const chunk of engine.completions.create({ prompt: plain.prompt, max_tokens: plain.greedy_ids.length, stream: true })) streamed += chunk.choices[0]?.text ?? '';
    expect(streamed).toBe(plain.decoded_text);
    await expect(engine.completions.create({ prompt: ['a', 'b'] as unknown as string })).rejects.toBeInstanceOf(InvalidRequestError);
    await expect(engine.completions.create({ prompt: 'a', echo: true })).rejects.toThrow(/"echo"/);
    await expect(engine.completions.create({ prompt: 'a', suffix: 'b' } as OpenAI.CompletionCreateParamsNonStreaming)).rejects.toThrow(/"suffix" is not supported/);
  });
});

describe('frequency and presence penalties', () => {
  it('give the ids of a CPU-reference decode with the same penalties (greedy and sampled)', async () => {
    const opened = await openModel(new NodeModelFiles(modelDir('tri-tiny')));
    const reference = new ReferenceLlama(opened.spec, await loadLlamaWeightsF32(opened.spec, opened.checkpoint));
    const prompt = golden.ko_plain!; // greedy repeats "그렇게 하면," : the penalties must change it
    const steps = 24;
    for (const options of [{ frequencyPenalty: 1.2 }, { presencePenalty: 1.5, frequencyPenalty: 0.3, temperature: 0.8, seed: 9 }]) {
      const config = samplingConfig(options);
      reference.reset();
      const ids: number[] = [];
      const counts = new Map<number, number>();
      let logits: Float32Array = new Float32Array(0);
      for (const id of prompt.prompt_ids) logits = reference.forward(id);
      for (let step = 0; step < steps; step++) {
        const id = referenceSample(logits, config, new Set([...prompt.prompt_ids, ...ids]), step, counts);
        ids.push(id);
        if (opened.spec.eosTokenIds.includes(id)) break;
        counts.set(id, (counts.get(id) ?? 0) + 1);
        logits = reference.forward(id);
      }
      const result = await engine.complete({ tokenIds: prompt.prompt_ids }, { ...options, maxNewTokens: steps });
      expect(result.tokenIds, JSON.stringify(options)).toEqual(ids);
      expect(ids.slice(0, prompt.greedy_ids.length), 'the penalty changed the greedy continuation').not.toEqual(prompt.greedy_ids.slice(0, ids.length));
    }
  });
});

describe('logprobs (computed on the GPU)', () => {
  it('of a greedy chat answer agree with the CPU reference\'s log-softmax, whole and streamed, in OpenAI\'s shape', async () => {
    const opened = await openModel(new NodeModelFiles(modelDir('tri-tiny')));
    const reference = new ReferenceLlama(opened.spec, await loadLlamaWeightsF32(opened.spec, opened.checkpoint));
    let logits: Float32Array = new Float32Array(0);
    for (const id of chat.prompt_ids) logits = reference.forward(id);
    const expected: { logprob: number; top: number[] }[] = [];
    for (const id of chat.greedy_ids) {
      expected.push({ logprob: logProbabilities(logits, [id])[0]!, top: topLogprobs(logits, 5).map((entry) => entry.id) });
      logits = reference.forward(id);
    }
    const request: OpenAI.Chat.ChatCompletionCreateParamsNonStreaming = { model: 'tri-tiny', messages, max_tokens: 48, logprobs: true, top_logprobs: 5 };
    const completion: OpenAI.Chat.ChatCompletion = await engine.chat.completions.create(request);
    expect(completion.choices[0]!.message.content).toBe(chat.decoded_text);
    const content = completion.choices[0]!.logprobs!.content!;
    // One entry per output token; the end-of-sequence token that stopped it is not output.
    const output = chat.greedy_ids.filter((id) => !opened.spec.eosTokenIds.includes(id));
    expect(content).toHaveLength(output.length);
    content.forEach((entry, i) => {
      expect(Math.abs(entry.logprob - expected[i]!.logprob)).toBeLessThan(1e-4);
      expect(entry.top_logprobs).toHaveLength(5);
      expect(entry.top_logprobs[0]!.logprob).toBeGreaterThanOrEqual(entry.logprob - 1e-6); // greedy: the chosen token is the most likely
      expect(entry.bytes).toEqual([...new TextEncoder().encode(entry.token)]);
    });
    expect(content.map((entry) => entry.token).join('')).toBe(chat.decoded_text);
    const result = await engine.complete({ tokenIds: chat.prompt_ids }, { maxNewTokens: 48, logprobs: true, topLogprobs: 5 });
    result.logprobs!.forEach((token, i) => expect(token.top.map((top) => top.tokenId)).toEqual(expected[i]!.top));

    const streamed: OpenAI.Chat.ChatCompletionTokenLogprob[] = [];
    for await (const chunk of engine.chat.completions.create({ ...request, stream: true })) streamed.push(...(chunk.choices[0]?.logprobs?.content ?? []));
    expect(streamed).toEqual(content);
  });

  it('in completions: parallel arrays with text offsets, whole and streamed; a bad count is refused', async () => {
    const plain = golden.en_plain!;
    const completion: OpenAI.Completion = await engine.completions.create({ prompt: plain.prompt, max_tokens: plain.greedy_ids.length, logprobs: 3 });
    const logprobs = completion.choices[0]!.logprobs!;
    expect(logprobs.tokens!.join('')).toBe(plain.decoded_text);
    expect(logprobs.token_logprobs!.every((value) => value <= 0)).toBe(true);
    expect(logprobs.top_logprobs!.every((top) => Object.keys(top).length >= 1 && Object.keys(top).length <= 3)).toBe(true);
    logprobs.text_offset!.forEach((offset, i) => expect(plain.decoded_text.slice(offset).startsWith(logprobs.tokens![i]!)).toBe(true));
    const streamed = { tokens: [] as string[], offsets: [] as number[] };
    for await (const chunk of engine.completions.create({ prompt: plain.prompt, max_tokens: plain.greedy_ids.length, logprobs: 3, stream: true })) {
      streamed.tokens.push(...(chunk.choices[0]?.logprobs?.tokens ?? []));
      streamed.offsets.push(...(chunk.choices[0]?.logprobs?.text_offset ?? []));
    }
    expect(streamed).toEqual({ tokens: logprobs.tokens, offsets: logprobs.text_offset });
    await expect(engine.completions.create({ prompt: 'a', logprobs: 21 })).rejects.toThrow(/"logprobs" must be a whole number in 0\.\.20/);
    await expect(engine.complete('a', { topLogprobs: 2 })).rejects.toThrow(/topLogprobs needs logprobs: true/);
  });
});
