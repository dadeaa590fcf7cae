// tri-tiny-chat, the chat app's bundled model, against its transformers goldens: its chat template comes
// from chat_template.jinja (the transformers 5 layout), its sampling defaults from generation_config.json,
// and f32 greedy decoding reproduces every golden's token ids and text.
import { beforeAll, describe, expect, it } from 'vitest';
import { TriEngine } from '../../src/index.ts';
import { NodeModelFiles, getNodeGpu } from '../../src/node.ts';
import { generationDefaults } from '../../src/runtime/sampling.ts';
import { modelDir, triTinyChatGolden } from '../fixtures.ts';

let engine: TriEngine;
beforeAll(async () => {
  engine = await TriEngine.load(new NodeModelFiles(modelDir('tri-tiny-chat')), { gpu: await getNodeGpu() });
  return () => engine.dispose();
});

describe('tri-tiny-chat (Node, f32)', () => {
  it('takes its chat template from chat_template.jinja and its (greedy) sampling from generation_config.json', () => {
    expect(engine.text.hasChatTemplate).toBe(true);
    expect(engine.generationDefaults).toEqual({ temperature: 0 });
  });

  for (const golden of triTinyChatGolden()) {
    it(`${golden.name}: prompt ids and greedy ids equal transformers'`, async () => {
      expect(engine.promptIds(golden.messages)).toEqual(golden.prompt_ids);
      const result = await engine.complete(golden.messages, { ...engine.generationDefaults, maxNewTokens: golden.greedy_ids.length });
      expect(result.tokenIds).toEqual(golden.greedy_ids);
      expect(result.text).toBe(golden.decoded_text);
    });
  }
});

describe('generationDefaults', () => {
  it('reads generation_config.json as transformers does', () => {
    expect(generationDefaults({})).toEqual({ temperature: 0 });
    expect(generationDefaults({ do_sample: false, temperature: 0.7 })).toEqual({ temperature: 0 });
    expect(generationDefaults({ do_sample: true })).toEqual({ temperature: 1, topK: 50, topP: 1, minP: 0, repetitionPenalty: 1 });
    expect(generationDefaults({ do_sample: true, temperature: 0.6, top_p: 0.9, top_k: 0, repetition_penalty: 1.05 }))
      .toEqual({ temperature: 0.6, topK: 0, topP: 0.9, minP: 0, repetitionPenalty: 1.05 });
    // Values the sampler would refuse are dropped, not passed on to fail every request.
    expect(generationDefaults({ do_sample: true, top_p: 0, top_k: -1, temperature: 'hot' })).toEqual({ minP: 0, repetitionPenalty: 1 });
  });
});
