// The public engine end to end in Node: streaming, stop reasons, bad input, and staying usable after it.
import { beforeAll, describe, expect, it } from 'vitest';
import { ContextOverflowError, TriEngine } from '../../src/index.ts';
import { NodeModelFiles, getNodeGpu } from '../../src/node.ts';
import { modelDir, triTinyGolden } from '../fixtures.ts';

let engine: TriEngine;
beforeAll(async () => {
  const progress: number[] = [];
  engine = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny')), {
    gpu: getNodeGpu(),
    onProgress: ({ loadedBytes }) => progress.push(loadedBytes),
  });
  // model.safetensors.index.json: metadata.total_size = 10,523,136 bytes of tensors.
  expect(progress).toHaveLength(4 * 9 + 3);
  expect(progress.at(-1)).toBe(10_523_136);
  return () => engine.dispose();
});

const golden = Object.fromEntries(triTinyGolden().map((c) => [c.name, c]));

describe('TriEngine on tri-tiny (Node)', () => {
  it('streams the Korean chat golden answer token by token, stopping at <|im_end|>', async () => {
    const chat = golden.chat_ko!;
    const deltas: string[] = [];
    const stream = engine.generate(chat.messages!, { maxNewTokens: 48 });
    let step = await stream.next();
    while (!step.done) {
      deltas.push(step.value.text);
      step = await stream.next();
    }
    const result = step.value;
    expect(result.tokenIds).toEqual(chat.greedy_ids);
    expect(result.finishReason).toBe('stop');
    expect(deltas.join('')).toBe(chat.decoded_text);
    expect(result.text).toBe(chat.decoded_text);
    for (const delta of deltas) expect(delta).not.toContain('\uFFFD');
    expect(result.usage).toEqual({ promptTokens: chat.prompt_ids.length, completionTokens: chat.greedy_ids.length });
  });

  it('stops at maxNewTokens with finish reason "length"', async () => {
    const result = await engine.complete(golden.ko_plain!.prompt, { maxNewTokens: 5 });
    expect(result.tokenIds).toEqual(golden.ko_plain!.greedy_ids.slice(0, 5));
    expect(result.finishReason).toBe('length');
  });

  it('refuses a prompt longer than the context, then keeps working', async () => {
    const tooLong = Array.from({ length: engine.contextLength + 1 }, () => 1332);
    await expect(engine.complete({ tokenIds: tooLong })).rejects.toBeInstanceOf(ContextOverflowError);
    const result = await engine.complete(golden.en_plain!.prompt, { maxNewTokens: 48 });
    expect(result.tokenIds).toEqual(golden.en_plain!.greedy_ids);
  });

  it('aborts between tokens with finish reason "abort", then keeps working', async () => {
    const controller = new AbortController();
    const stream = engine.generate(golden.ko_plain!.prompt, { maxNewTokens: 48, signal: controller.signal });
    let count = 0;
    let step = await stream.next();
    while (!step.done) {
      if (++count === 3) controller.abort();
      step = await stream.next();
    }
    expect(step.value.finishReason).toBe('abort');
    expect(step.value.tokenIds).toEqual(golden.ko_plain!.greedy_ids.slice(0, 3));
    const again = await engine.complete(golden.mixed_en_ko!.prompt, { maxNewTokens: 48 });
    expect(again.tokenIds).toEqual(golden.mixed_en_ko!.greedy_ids);
  });
});
