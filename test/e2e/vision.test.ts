// The llava vision half (tri-tiny-llava) against HF transformers' goldens: config and tensors, the CPU
// reference's image features from the golden pixel values; decoding and preprocessing of the pictures.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ModelFiles } from '../../src/model/byte-source.ts';
import { NodeModelFiles } from '../../src/model/node-files.ts';
import { openModel } from '../../src/model/open.ts';
import { readVisionWeights } from '../../src/model/llava-weights.ts';
import { SafetensorsCheckpoint } from '../../src/model/safetensors.ts';
import { encodeImageReference } from '../../src/reference/llava-vision.ts';
import { decodeImage } from '../../src/vision/decode-node.ts';
import { preprocessImage } from '../../src/vision/preprocess.ts';
import { InvalidRequestError } from '../../src/errors.ts';
import { GpuVisionEncoder, visionGpuBytes } from '../../src/model/vision-gpu.ts';
import { nodeGpuContext } from '../gpu/node-gpu.ts';
import { type PromptMessage, TriEngine } from '../../src/runtime/engine.ts';
import '../../src/node.ts'; // installs the PNG/JPEG decoder for Blobs and URLs, as the package's entry does
import { getNodeGpu } from '../../src/gpu/node.ts';
import { MODELS_DIR } from '../fixtures.ts';

const LLAVA_DIR = `${MODELS_DIR}tri-tiny-llava`;
interface LlavaCase { name: string; image: string; question: string; image_size: [number, number]; messages: unknown[]; prompt_ids: number[]; greedy_ids: number[]; decoded_text: string; last_top5: [number, number][] }
const cases: LlavaCase[] = JSON.parse(readFileSync(`${LLAVA_DIR}/golden.json`, 'utf8')).cases;

async function goldenTensors() {
  const checkpoint = await SafetensorsCheckpoint.open({ location: LLAVA_DIR, open: (name, signal) => new NodeModelFiles(LLAVA_DIR).open(name === 'model.safetensors' ? 'golden-tensors.safetensors' : name, signal) });
  return (name: string) => checkpoint.readFloat32(name);
}

const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((max, value, i) => Math.max(max, Math.abs(value - b[i]!)), 0);

describe('llava vision (tri-tiny-llava)', () => {
  it('reads the llava config and both halves of the checkpoint', async () => {
    const opened = await openModel(new NodeModelFiles(LLAVA_DIR));
    expect(opened.vision?.spec).toMatchObject({ featureLayers: 3, dropCls: true, imageSeqLength: 64, imageTokenId: 4096, textHiddenSize: 256, projectorActivation: 'gelu' });
    expect(opened.vision?.spec.tower).toMatchObject({ hiddenSize: 128, numLayers: 4, numHeads: 4, patchSize: 8, imageSize: 64, activation: 'quick_gelu' });
    expect(opened.vision?.preprocess).toMatchObject({ shortestEdge: 64, cropWidth: 64, resample: 3 });
    expect(opened.spec).toMatchObject({ vocabSize: 4160, hiddenSize: 256, tensorNames: { prefix: 'language_model.model.', lmHead: 'language_model.lm_head.weight' } });
  });

  it('CPU reference: image features within 1e-4 of HF for every golden picture', async () => {
    const opened = await openModel(new NodeModelFiles(LLAVA_DIR));
    const weights = await readVisionWeights(opened.vision!.spec, opened.checkpoint);
    const golden = await goldenTensors();
    for (const c of cases) {
      const features = encodeImageReference(opened.vision!.spec, weights, await golden(`${c.name}.pixel_values`));
      expect(maxDiff(features, await golden(`${c.name}.image_features`)), c.name).toBeLessThan(1e-4);
    }
  });
});

describe('image preprocessing (Node decoders, PIL-style resampling)', () => {
  it('pixel values within 1e-5 of HF, the resized 96×96 picture too (the issue allows 2e-2 there)', async () => {
    const opened = await openModel(new NodeModelFiles(LLAVA_DIR));
    const golden = await goldenTensors();
    for (const c of cases) {
      const pixels = preprocessImage(decodeImage(readFileSync(`${LLAVA_DIR}/${c.image}`)), opened.vision!.preprocess);
      const error = maxDiff(pixels, await golden(`${c.name}.pixel_values`));
      expect(error, c.name).toBeLessThan(1e-5);
      if (c.image_size[0] !== 64) console.log(`${c.name} (${c.image_size.join('×')} → 64×64): max |Δ pixel value| = ${error.toExponential(2)}`);
    }
  });

  it('refuses what is not a picture, a cut-off PNG and a huge one with InvalidRequestError', () => {
    const png = readFileSync(`${LLAVA_DIR}/${cases[0]!.image}`);
    expect(() => decodeImage(new TextEncoder().encode('not an image'))).toThrow(InvalidRequestError);
    expect(() => decodeImage(png.subarray(0, Math.floor(png.length / 2)))).toThrow(/cut off|damaged/);
    // A 10000×10000 header (IHDR rewritten) is refused before any pixel is decoded.
    const huge = Uint8Array.from(png);
    new DataView(huge.buffer).setUint32(16, 10000);
    new DataView(huge.buffer).setUint32(20, 10000);
    expect(() => decodeImage(huge)).toThrow(InvalidRequestError);
  });
});

describe('vision encoder on the GPU (Node, Dawn)', () => {
  it('image features within 1e-4 of HF and of the CPU reference, for every golden picture', async () => {
    const gpu = await nodeGpuContext();
    const opened = await openModel(new NodeModelFiles(LLAVA_DIR));
    const weights = await readVisionWeights(opened.vision!.spec, opened.checkpoint);
    const encoder = GpuVisionEncoder.create(gpu, opened.vision!.spec, weights);
    const golden = await goldenTensors();
    try {
      for (const c of cases) {
        const pixels = await golden(`${c.name}.pixel_values`);
        const features = await encoder.encode(pixels);
        expect(maxDiff(features, await golden(`${c.name}.image_features`)), c.name).toBeLessThan(1e-4);
        expect(maxDiff(features, encodeImageReference(opened.vision!.spec, weights, pixels)), c.name).toBeLessThan(1e-4);
      }
    } finally {
      encoder.destroy();
    }
    // f16 matrices (beside a quantized language model): close, not exact.
    const half = GpuVisionEncoder.create(gpu, opened.vision!.spec, weights, 'f16');
    try {
      let worst = 0;
      for (const c of cases) worst = Math.max(worst, maxDiff(await half.encode(await golden(`${c.name}.pixel_values`)), await golden(`${c.name}.image_features`)));
      console.log(`vision tower with f16 matrices: max |Δ feature| vs HF = ${worst.toExponential(2)}`);
      expect(worst).toBeLessThan(1e-3); // measured 6.7e-6: bf16 weights are exact in f16 (in range)
    } finally {
      half.destroy();
    }
  });

  it('the memory plan counts the vision tower', async () => {
    const gpu = await getNodeGpu();
    const plan = await TriEngine.plan(new NodeModelFiles(LLAVA_DIR), { gpu });
    const opened = await openModel(new NodeModelFiles(LLAVA_DIR));
    expect(plan.gpuBytes.weights).toBeGreaterThan(visionGpuBytes(opened.vision!.spec));
    const engine = await TriEngine.load(new NodeModelFiles(LLAVA_DIR), { gpu });
    try {
      // The language model's buffers as planned; the vision tower's are the rest of the plan.
      expect(Math.abs(plan.gpuBytes.total - visionGpuBytes(opened.vision!.spec) - engine.gpuBytes)).toBeLessThan(plan.gpuBytes.total / 1000);
    } finally {
      engine.dispose();
    }
  });
});

describe('images in, text out (TriEngine, Node)', () => {
  it('reproduces every golden answer (English and Korean questions) exactly in f32, and reuses an image\'s KV pages in a follow-up turn', async () => {
    const engine = await TriEngine.load(new NodeModelFiles(LLAVA_DIR), { gpu: await getNodeGpu() });
    try {
      expect(engine.weights).toEqual({ format: 'f32' });
      for (const c of cases) {
        const image = decodeImage(readFileSync(`${LLAVA_DIR}/${c.image}`));
        const messages = [{ role: 'user', content: [{ type: 'image' as const, image }, { type: 'text' as const, text: c.question }] }];
        const result = await engine.complete(messages, { maxNewTokens: 16 });
        expect(result.tokenIds, c.name).toEqual(c.greedy_ids);
        expect(result.text, c.name).toBe(c.decoded_text);
        expect(result.usage.promptTokens, c.name).toBe(c.prompt_ids.length);
      }
      // The same picture again, in a longer chat: its pages come from the cache (the prompt up to the image and the image rows).
      const first = cases[0]!;
      const image = decodeImage(readFileSync(`${LLAVA_DIR}/${first.image}`));
      const turn = [{ role: 'user', content: [{ type: 'image' as const, image }, { type: 'text' as const, text: first.question }] }];
      const followUp = await engine.complete([...turn, { role: 'assistant', content: first.decoded_text }, { role: 'user', content: 'What colour is it?' }], { maxNewTokens: 8 });
      expect(followUp.usage.cachedPromptTokens).toBeGreaterThanOrEqual(64);
      // A picture one pixel away from it shares no page (the first page already holds image rows).
      const other = { ...image, data: Uint8Array.from(image.data) };
      other.data[0] = other.data[0]! ^ 1;
      const different = await engine.complete([{ role: 'user', content: [{ type: 'image', image: other }, { type: 'text', text: first.question }] }], { maxNewTokens: 4 });
      expect(different.usage.cachedPromptTokens).toBe(0);
    } finally {
      engine.dispose();
    }
  });
});

describe('bad image input (typed errors, the engine stays usable)', () => {
  it('refuses images for a text model, non-images, damaged files and bad parts; a URL is decoded in Node', async () => {
    const gpu = await getNodeGpu();
    const text = await TriEngine.load(new NodeModelFiles(`${MODELS_DIR}tri-tiny`), { gpu });
    const vision = await TriEngine.load(new NodeModelFiles(LLAVA_DIR), { gpu });
    const png = readFileSync(`${LLAVA_DIR}/${cases[0]!.image}`);
    const ask = (engine: TriEngine, image: unknown, type: 'image' | 'image_url' = 'image') =>
      engine.complete([{ role: 'user', content: [type === 'image' ? { type, image } : { type, image_url: image }, { type: 'text', text: 'What is in the image?' }] } as PromptMessage], { maxNewTokens: 4 });
    try {
      await expect(ask(text, decodeImage(png))).rejects.toThrow(/no vision tower/);
      await expect(ask(vision, 42)).rejects.toBeInstanceOf(InvalidRequestError);
      await expect(ask(vision, new Blob([png.subarray(0, 100)]))).rejects.toThrow(/cut off|damaged/);
      await expect(ask(vision, new Blob(['plain text']))).rejects.toThrow(/neither PNG nor JPEG/);
      await expect(ask(vision, { width: 2, height: 2, channels: 4, data: new Uint8Array(3) })).rejects.toBeInstanceOf(InvalidRequestError);
      await expect(ask(vision, { width: 10000, height: 10000, channels: 4, data: new Uint8Array(4) })).rejects.toThrow(/megapixels/);
      await expect(vision.score([{ role: 'user', content: [{ type: 'image', image: decodeImage(png) }, { type: 'text', text: 'Hi' }] }], ['A'])).rejects.toThrow(/take text only/);
      // A data: URL (what OpenAI clients send) decodes through 'tri-webgpu/node'.
      const dataUrl = `data:image/png;base64,${png.toString('base64')}`;
      expect((await ask(vision, { url: dataUrl }, 'image_url')).tokenIds).toEqual(cases[0]!.greedy_ids.slice(0, 4));
      const openai = await vision.chat.completions.create({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl } }, { type: 'text', text: cases[0]!.question }] }], max_tokens: 16 });
      expect(openai.choices[0].message.content).toBe(cases[0]!.decoded_text);
    } finally {
      text.dispose();
      vision.dispose();
    }
  });
});

describe('a chat template that drops image parts', () => {
  it('is refused: more images than <image> tokens', async () => {
    const files = new NodeModelFiles(LLAVA_DIR);
    const textOnly: ModelFiles = {
      location: files.location,
      async open(name, signal) {
        if (name !== 'chat_template.jinja') return files.open(name, signal);
        const bytes = new TextEncoder().encode("{%- for m in messages %}<|im_start|>{{ m['role'] }}\n{% for p in m['content'] %}{% if p['type'] == 'text' %}{{ p['text'] }}{% endif %}{% endfor %}<|im_end|>\n{%- endfor %}<|im_start|>assistant\n");
        return { name, size: bytes.length, read: async (offset, length) => bytes.slice(offset, offset + length) };
      },
    };
    const engine = await TriEngine.load(textOnly, { gpu: await getNodeGpu() });
    try {
      const image = decodeImage(readFileSync(`${LLAVA_DIR}/${cases[0]!.image}`));
      await expect(engine.complete([{ role: 'user', content: [{ type: 'image', image }, { type: 'text', text: 'Hi' }] }])).rejects.toThrow(/1 images but the chat template placed 0 <image> tokens/);
      expect((await engine.complete('Hello', { maxNewTokens: 2 })).tokenIds.length).toBeGreaterThan(0); // still usable
    } finally {
      engine.dispose();
    }
  });
});

describe('vision model in q4 (Node)', () => {
  it('reports top-1 agreement with the f32 goldens', async () => {
    const engine = await TriEngine.load(new NodeModelFiles(LLAVA_DIR), { gpu: await getNodeGpu(), weights: { format: 'q4', groupSize: 32 } });
    let agreeing = 0;
    let total = 0;
    try {
      for (const c of cases) {
        const image = decodeImage(readFileSync(`${LLAVA_DIR}/${c.image}`));
        // Greedy: the golden tokens reproduced before the first difference.
        const messages = [{ role: 'user', content: [{ type: 'image' as const, image }, { type: 'text' as const, text: c.question }] }];
        const result = await engine.complete(messages, { maxNewTokens: c.greedy_ids.length });
        const same = result.tokenIds.findIndex((id, i) => id !== c.greedy_ids[i]);
        agreeing += same < 0 ? c.greedy_ids.length : same;
        total += c.greedy_ids.length;
      }
    } finally {
      engine.dispose();
    }
    console.log(`tri-tiny-llava q4 G=32 (vision matrices f16): ${agreeing}/${total} golden tokens before the first difference`);
    expect(agreeing / total).toBeGreaterThan(0.9); // measured 43/43
  });
});
