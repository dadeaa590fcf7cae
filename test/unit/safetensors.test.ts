// The safetensors reader and model opening on good and bad input: each failure is a typed error that
// names the file (and tensor) and the problem.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ModelFileMissingError, SafetensorsFormatError, TokenizerError, UnsupportedModelError } from '../../src/errors.ts';
import { BlobModelFiles, BlobSource } from '../../src/model/byte-source.ts';
import { openModel } from '../../src/model/open.ts';
import { SafetensorsCheckpoint, readSafetensorsHeader, readTensorBytes, tensorToFloat32 } from '../../src/model/safetensors.ts';
import { modelDir } from '../fixtures.ts';

/** A safetensors file from a header object and raw data bytes (header padded to 8 bytes, as writers do). */
function safetensorsFile(header: object, data: Uint8Array = new Uint8Array(0), headerLengthOverride?: number): Uint8Array<ArrayBuffer> {
  let json = JSON.stringify(header);
  while ((json.length + 8) % 8) json += ' ';
  const headerBytes = new TextEncoder().encode(json);
  const file = new Uint8Array(8 + headerBytes.length + data.length);
  new DataView(file.buffer).setBigUint64(0, BigInt(headerLengthOverride ?? headerBytes.length), true);
  file.set(headerBytes, 8);
  file.set(data, 8 + headerBytes.length);
  return file;
}

const source = (bytes: Uint8Array<ArrayBuffer>, name = 'bad.safetensors') => new BlobSource(new Blob([bytes]), name);

const fixtureFiles = (name: 'stories260k' | 'tri-tiny', replace: Record<string, Uint8Array<ArrayBuffer> | null> = {}) => {
  const names = name === 'tri-tiny'
    ? ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']
    : ['config.json', 'generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'model.safetensors'];
  const files = new Map<string, Blob>();
  for (const file of names) {
    const bytes = file in replace ? replace[file] : readFileSync(`${modelDir(name)}/${file}`);
    if (bytes) files.set(file, new Blob([bytes]));
  }
  return new BlobModelFiles(files, `${name} (in memory)`);
};

describe('safetensors reader', () => {
  it('reads F32, F16 and BF16 tensors by byte range', async () => {
    const data = new Uint8Array(16);
    const view = new DataView(data.buffer);
    view.setFloat32(0, 1.5, true);
    view.setFloat32(4, -2, true);
    view.setUint16(8, 0x3c00, true); //  f16 1.0
    view.setUint16(10, 0xc500, true); // f16 -5.0
    view.setUint16(12, 0x4049, true); // bf16 3.140625
    view.setUint16(14, 0xbf80, true); // bf16 -1.0
    const header = {
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F16', shape: [2], data_offsets: [8, 12] },
      c: { dtype: 'BF16', shape: [1, 2], data_offsets: [12, 16] },
    };
    const tensors = await readSafetensorsHeader(source(safetensorsFile(header, data)));
    const read = async (name: string) => [...tensorToFloat32(tensors.get(name)!, await readTensorBytes(tensors.get(name)!))];
    expect(await read('a')).toEqual([1.5, -2]);
    expect(await read('b')).toEqual([1, -5]);
    expect(await read('c')).toEqual([3.140625, -1]);
    expect(tensors.get('c')!.shape).toEqual([1, 2]);
  });

  it('opens a sharded checkpoint through its index (tri-tiny, 2 shards)', async () => {
    const checkpoint = await SafetensorsCheckpoint.open(fixtureFiles('tri-tiny'));
    expect(checkpoint.tensors.size).toBe(4 * 9 + 3);
    expect(checkpoint.get('lm_head.weight')!.dtype).toBe('BF16');
    expect(new Set([...checkpoint.tensors.values()].map((t) => t.source.name)).size).toBe(2);
  });

  const bad: Array<[string, () => Uint8Array<ArrayBuffer>, RegExp]> = [
    ['a truncated file', () => readFileSync(`${modelDir('stories260k')}/model.safetensors`).subarray(0, 500_000) as Uint8Array<ArrayBuffer>, /tensor ".+"\): data_offsets end \d+ is past the end of the data/],
    ['a file shorter than the length prefix', () => new Uint8Array(5), /too short for the 8-byte header length/],
    ['a header length past the end', () => safetensorsFile({}, new Uint8Array(0), 1 << 20), /header length 1048576 runs past the end of the file/],
    ['a header that is not JSON', () => { const f = safetensorsFile({ a: 1 }); f[9] = 0x7b; f[10] = 0x7b; return f; }, /header is not valid UTF-8 JSON/],
    ['overlapping offsets', () => safetensorsFile({
      a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    }, new Uint8Array(12)), /tensor "b"\): data overlaps tensor "a"/],
    ['an unknown dtype', () => safetensorsFile({ w: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }, new Uint8Array(4)), /tensor "w"\): unsupported dtype "F8_E4M3"/],
    ['a shape that does not match the byte length', () => safetensorsFile({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)), /tensor "w"\): shape \[3\] × F32 needs 12 bytes but data_offsets span 8/],
  ];
  for (const [label, bytes, message] of bad) {
    it(`refuses ${label} with a SafetensorsFormatError naming the file`, async () => {
      const error = await readSafetensorsHeader(source(bytes(), 'broken.safetensors')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(SafetensorsFormatError);
      expect((error as Error).message).toMatch(/^broken\.safetensors/);
      expect((error as Error).message).toMatch(message);
    });
  }
});

describe('opening a model folder', () => {
  it('opens both fixtures with their specs and stop ids', async () => {
    const tri = await openModel(fixtureFiles('tri-tiny'));
    expect(tri.spec).toMatchObject({ hiddenSize: 256, numHeads: 8, numKvHeads: 8, headDim: 32, vocabSize: 4096, tieWordEmbeddings: false, ropeTheta: 10000 });
    expect([...tri.spec.eosTokenIds].sort()).toEqual([0, 2]);
    const stories = await openModel(fixtureFiles('stories260k'));
    expect(stories.spec).toMatchObject({ numHeads: 8, numKvHeads: 4, headDim: 8, tieWordEmbeddings: true, bosTokenId: 1 });
  });

  it('names a shard that the index lists but the folder lacks', async () => {
    const error = await openModel(fixtureFiles('tri-tiny', { 'model-00002-of-00002.safetensors': null })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelFileMissingError);
    expect((error as Error).message).toMatch(/model-00002-of-00002\.safetensors is missing .*named by model\.safetensors\.index\.json/);
  });

  it('refuses an unsupported architecture', async () => {
    const config = JSON.parse(readFileSync(`${modelDir('tri-tiny')}/config.json`, 'utf8'));
    const gemma = new TextEncoder().encode(JSON.stringify({ ...config, architectures: ['Gemma2ForCausalLM'], model_type: 'gemma2' }));
    const error = await openModel(fixtureFiles('tri-tiny', { 'config.json': gemma })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UnsupportedModelError);
    expect((error as Error).message).toMatch(/architecture "Gemma2ForCausalLM" is not supported/);
  });

  it('refuses shard names that are not plain file names in the folder, without opening them', async () => {
    const index = JSON.parse(readFileSync(`${modelDir('tri-tiny')}/model.safetensors.index.json`, 'utf8'));
    const first = Object.keys(index.weight_map)[0]!;
    for (const shard of ['../../etc/passwd', '/etc/passwd', 'https://example.invalid/x.safetensors', '.', 7, null]) {
      const bad = new TextEncoder().encode(JSON.stringify({ ...index, weight_map: { ...index.weight_map, [first]: shard } }));
      const error = await openModel(fixtureFiles('tri-tiny', { 'model.safetensors.index.json': bad })).catch((e: unknown) => e);
      expect(error, String(shard)).toBeInstanceOf(SafetensorsFormatError);
      expect((error as Error).message).toMatch(/not a plain file name/);
    }
  });

  it('says tokenizer.json is not a tokenizer when it holds JSON null', async () => {
    const error = await openModel(fixtureFiles('tri-tiny', { 'tokenizer.json': new TextEncoder().encode('null') })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TokenizerError);
    expect((error as Error).message).toMatch(/not a JSON object/);
  });

  it('compares the layer count with the checkpoint first: a huge num_hidden_layers fails at once, extra layers are refused', async () => {
    const config = JSON.parse(readFileSync(`${modelDir('stories260k')}/config.json`, 'utf8'));
    for (const layers of [1e9, 2 ** 31, config.num_hidden_layers - 1]) {
      const started = performance.now();
      const edited = new TextEncoder().encode(JSON.stringify({ ...config, num_hidden_layers: layers }));
      const error = await openModel(fixtureFiles('stories260k', { 'config.json': edited })).catch((e: unknown) => e);
      expect(error, String(layers)).toBeInstanceOf(UnsupportedModelError);
      expect((error as Error).message).toMatch(new RegExp(`num_hidden_layers = ${layers}, but the checkpoint holds ${config.num_hidden_layers} layers`));
      expect(performance.now() - started).toBeLessThan(1000);
    }
  });

  it('says tokenizer.json is missing', async () => {
    const error = await openModel(fixtureFiles('tri-tiny', { 'tokenizer.json': null })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelFileMissingError);
    expect((error as Error).message).toMatch(/^tokenizer\.json is missing/);
  });

  it('refuses a checkpoint whose tensor shapes contradict config.json', async () => {
    const config = JSON.parse(readFileSync(`${modelDir('stories260k')}/config.json`, 'utf8'));
    const wider = new TextEncoder().encode(JSON.stringify({ ...config, intermediate_size: 176 }));
    const error = await openModel(fixtureFiles('stories260k', { 'config.json': wider })).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SafetensorsFormatError);
    expect((error as Error).message).toMatch(/model\.safetensors \(tensor "model\.layers\.0\.mlp\.gate_proj\.weight"\): shape \[172, 64\] does not match config\.json, which implies \[176, 64\]/);
  });
});
