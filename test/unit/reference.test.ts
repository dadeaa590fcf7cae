// The CPU reference against the golden files of both fixtures (llama2.c / HF transformers).
import { beforeAll, describe, expect, it } from 'vitest';
import { loadLlamaWeightsF32 } from '../../src/model/llama-weights.ts';
import { NodeModelFiles } from '../../src/model/node-files.ts';
import { type OpenedModel, openModel } from '../../src/model/open.ts';
import { ReferenceLlama, referenceGreedy } from '../../src/reference/llama.ts';
import { modelDir, storiesGolden, triTinyGolden } from '../fixtures.ts';

async function loadReference(name: 'stories260k' | 'tri-tiny'): Promise<{ model: OpenedModel; reference: ReferenceLlama }> {
  const model = await openModel(new NodeModelFiles(modelDir(name)));
  const weights = await loadLlamaWeightsF32(model.spec, model.checkpoint);
  return { model, reference: new ReferenceLlama(model.spec, weights) };
}

describe('CPU reference, stories260k (llama2.c goldens)', () => {
  let loaded: Awaited<ReturnType<typeof loadReference>>;
  beforeAll(async () => {
    loaded = await loadReference('stories260k');
  });

  for (const golden of storiesGolden()) {
    it(`greedy ids for "${golden.prompt}"`, () => {
      expect(loaded.model.text.encode(golden.prompt)).toEqual(golden.prompt_ids);
      const generated = referenceGreedy(loaded.reference, golden.prompt_ids, golden.generated_ids.length, []);
      expect(generated).toEqual(golden.generated_ids);
      expect(loaded.model.text.decode(generated)).toBe(golden.generated_text);
    });

    it(`first-step top-5 logits for "${golden.prompt}" within 1e-3`, () => {
      loaded.reference.reset();
      let logits: Float32Array = new Float32Array(0);
      for (const id of golden.prompt_ids) logits = loaded.reference.forward(id);
      for (const { id, logit } of golden.first_gen_top5) expect(Math.abs(logits[id]! - logit)).toBeLessThan(1e-3);
    });
  }
});

describe('CPU reference, tri-tiny (HF transformers goldens)', () => {
  let loaded: Awaited<ReturnType<typeof loadReference>>;
  beforeAll(async () => {
    loaded = await loadReference('tri-tiny');
  });

  for (const golden of triTinyGolden()) {
    it(`greedy ids for ${golden.name}`, () => {
      const { text } = loaded.model;
      const promptIds = golden.messages
        ? text.applyChatTemplate(golden.messages)
        : text.encode(golden.prompt);
      expect(promptIds).toEqual(golden.prompt_ids);
      const generated = referenceGreedy(loaded.reference, golden.prompt_ids, 48);
      expect(generated).toEqual(golden.greedy_ids);
      expect(text.decode(generated)).toBe(golden.decoded_text);
    });

    it(`last-prompt top-5 logits and per-position logits for ${golden.name} within 1e-3`, () => {
      loaded.reference.reset();
      let logits: Float32Array = new Float32Array(0);
      golden.prompt_ids.forEach((id, position) => {
        logits = loaded.reference.forward(id);
        const row = golden.prompt_logits_first16?.[position];
        if (row) row.forEach((value, vocabId) => expect(Math.abs(logits[vocabId]! - value)).toBeLessThan(1e-3));
      });
      for (const [id, logit] of golden.last_top5) expect(Math.abs(logits[id]! - logit)).toBeLessThan(1e-3);
    });
  }
});
