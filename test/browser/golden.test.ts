// The same GPU forward in real headless Chromium (WebGPU on SwiftShader): weights fetched with HTTP
// Range requests, golden ids for both fixtures, and streamed Korean text.
import { describe, expect, inject, it } from 'vitest';
import { GpuContext } from '../../src/gpu/context.ts';
import { DeviceLostError, HttpModelFiles, TriEngine } from '../../src/index.ts';
import { streamResult } from '../../src/runtime/stream.ts';
import { GpuLlama } from '../../src/model/llama-gpu.ts';
import { loadLlamaWeightsF32 } from '../../src/model/llama-weights.ts';
import { openModel } from '../../src/model/open.ts';
import { ReferenceLlama } from '../../src/reference/llama.ts';
import { errorStats } from '../random.ts';
import { collectStream } from '../stream.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    modelsUrl: string;
  }
}

const modelUrl = (name: string) => new URL(`${inject('modelsUrl')}${name}/`, location.origin).href;

async function golden(name: string) {
  return (await fetch(`${modelUrl(name)}golden.json`)).json();
}

describe('GPU forward in Chromium', () => {
  it('has WebGPU (fails loudly if not, never skips)', async () => {
    expect(navigator.gpu, 'navigator.gpu missing: Chromium must run with --enable-unsafe-webgpu').toBeDefined();
    expect(await navigator.gpu.requestAdapter()).not.toBeNull();
  });

  it('reproduces the stories260k golden ids (GQA, tied head)', async () => {
    const engine = await TriEngine.load(modelUrl('stories260k'));
    try {
      for (const c of (await golden('stories260k')).cases) {
        const result = await engine.complete({ tokenIds: c.prompt_ids }, { maxNewTokens: c.generated_ids.length });
        expect(result.tokenIds).toEqual(c.generated_ids);
      }
    } finally {
      engine.dispose();
    }
  });

  it('tri-tiny-llava: every golden answer from pictures given as URLs (decoded by the browser, resized as PIL does), English and Korean questions', async () => {
    const engine = await TriEngine.load(modelUrl('tri-tiny-llava'));
    try {
      for (const c of (await golden('tri-tiny-llava')).cases) {
        const messages = [{ role: 'user', content: [{ type: 'image_url' as const, image_url: { url: `${modelUrl('tri-tiny-llava')}${c.image}` } }, { type: 'text' as const, text: c.question }] }];
        const result = await engine.complete(messages, { maxNewTokens: 16 });
        expect(result.tokenIds, c.name).toEqual(c.greedy_ids);
        expect(result.text, c.name).toBe(c.decoded_text);
      }
      // An ImageBitmap and a canvas work as well as a URL.
      const first = (await golden('tri-tiny-llava')).cases[0];
      const bitmap = await createImageBitmap(await (await fetch(`${modelUrl('tri-tiny-llava')}${first.image}`)).blob());
      const canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      canvas.getContext('2d')!.drawImage(bitmap, 0, 0);
      for (const image of [bitmap, canvas]) {
        const result = await engine.complete([{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: first.question }] }], { maxNewTokens: 16 });
        expect(result.tokenIds).toEqual(first.greedy_ids);
      }
    } finally {
      engine.dispose();
    }
  });

  it('reproduces every tri-tiny golden (MHA, untied head, bf16 shards) and streams Korean intact', async () => {
    const engine = await TriEngine.load(modelUrl('tri-tiny'));
    try {
      for (const c of (await golden('tri-tiny')).prompts) {
        const { deltas, result } = await collectStream(engine.generate(c.messages ?? c.prompt, { maxNewTokens: 48 }));
        expect(result.tokenIds, c.name).toEqual(c.greedy_ids);
        expect(deltas.join(''), c.name).toBe(c.decoded_text);
        for (const delta of deltas) expect(delta).not.toContain('\uFFFD');
      }
    } finally {
      engine.dispose();
    }
  });

  it('tri-tiny goldens through the subgroup kernels (split-K GEMVs added by shuffles, the sampler by subgroups)', async () => {
    // subgroups: true fails the load with a GpuLimitError where Chromium's adapter has none: never skipped.
    const engine = await TriEngine.load(modelUrl('tri-tiny'), { subgroups: true, cache: false });
    try {
      for (const c of (await golden('tri-tiny')).prompts) {
        const result = await engine.complete(c.messages ?? c.prompt, { maxNewTokens: 48 });
        expect(result.tokenIds, c.name).toEqual(c.greedy_ids);
      }
    } finally {
      engine.dispose();
    }
  });
});

describe('GPU logits in Chromium vs the CPU reference (run in the same page)', () => {
  it('tri-tiny: max |GPU − CPU| < 1e-4 over the en_plain prompt and its continuation', async () => {
    const files = new HttpModelFiles(modelUrl('tri-tiny'));
    const opened = await openModel(files);
    const gpu = await GpuContext.create();
    const model = await GpuLlama.load(gpu, opened.spec, opened.checkpoint, { contextLength: 64 });
    const reference = new ReferenceLlama(opened.spec, await loadLlamaWeightsF32(opened.spec, opened.checkpoint), 64);
    try {
      const c = (await golden('tri-tiny')).prompts[0];
      let worst = 0;
      for (const id of [...c.prompt_ids, ...c.greedy_ids.slice(0, 8)]) {
        const gpuLogits = await model.forwardLogits([id]);
        const cpuLogits = reference.forward(id);
        worst = Math.max(worst, errorStats(gpuLogits, cpuLogits).maxAbs);
      }
      console.log(`Chromium tri-tiny: max |GPU − CPU| logit error = ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-4);
    } finally {
      model.destroy();
      gpu.destroy();
    }
  });
});

describe('device loss in Chromium', () => {
  it('ends a running generation with DeviceLostError (not the AbortError of a pending mapAsync)', async () => {
    const engine = await TriEngine.load(modelUrl('tri-tiny'), { cache: false });
    const c = (await golden('tri-tiny')).prompts[1];
    const stream = engine.generate({ tokenIds: c.prompt_ids }, { maxNewTokens: 40 });
    expect((await stream.next()).done).toBe(false);
    engine.gpu.device.destroy();
    const error = await streamResult(stream).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DeviceLostError);
    await expect(engine.complete('hello')).rejects.toBeInstanceOf(DeviceLostError);
    engine.dispose();
  });
});
