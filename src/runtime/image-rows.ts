// Image features as rows of the language model's input. A prompt's `<image>` token becomes
// imageSeqLength "image row" ids, at IMAGE_ROW_BASE and above (beyond any vocabulary): the GPU step
// writes the registered feature row in place of an embedding for each (llama-gpu.ts). The ids are the
// page keys of the paged KV cache too, so one picture always gets the same ids (it is registered once,
// by the SHA-256 of its pixel values) and a follow-up turn about it reuses its KV pages, while two
// pictures never share ids, hence never pages. The newest MAX_IMAGES pictures are kept.
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

export const IMAGE_ROW_BASE = 2 ** 30;
const MAX_IMAGES = 64;

export class ImageRows {
  private readonly rowsPerImage: number;
  private readonly width: number;
  /** Feature rows by image, oldest first (a Map keeps insertion order: the least recently used is first). */
  private readonly images = new Map<string, { base: number; features: Float32Array }>();
  private readonly byBase = new Map<number, Float32Array>();
  private nextBase = IMAGE_ROW_BASE;

  constructor(rowsPerImage: number, width: number) {
    this.rowsPerImage = rowsPerImage;
    this.width = width;
  }

  /** The key of a picture: the digest of its pixel values. */
  static key(pixels: Float32Array): string {
    return bytesToHex(sha256(new Uint8Array(pixels.buffer, pixels.byteOffset, pixels.byteLength)));
  }

  /** The row ids of a registered picture (marking it recently used), or undefined. */
  lookup(key: string): number[] | undefined {
    const image = this.images.get(key);
    if (!image) return undefined;
    this.images.delete(key);
    this.images.set(key, image);
    return this.ids(image.base);
  }

  /** Registers a picture's features [rowsPerImage][width]; returns its row ids. */
  add(key: string, features: Float32Array): number[] {
    if (features.length !== this.rowsPerImage * this.width) throw new RangeError(`image features hold ${features.length} values, not ${this.rowsPerImage}×${this.width}`);
    while (this.images.size >= MAX_IMAGES) {
      const [oldest, image] = this.images.entries().next().value!;
      this.images.delete(oldest);
      this.byBase.delete(image.base);
    }
    const base = this.nextBase;
    this.nextBase += this.rowsPerImage;
    this.images.set(key, { base, features });
    this.byBase.set(base, features);
    return this.ids(base);
  }

  /** The feature row behind an image row id, or undefined (not an image row, or forgotten). */
  row(id: number): Float32Array | undefined {
    if (id < IMAGE_ROW_BASE) return undefined;
    const index = (id - IMAGE_ROW_BASE) % this.rowsPerImage;
    const features = this.byBase.get(id - index);
    return features?.subarray(index * this.width, (index + 1) * this.width);
  }

  private ids(base: number): number[] {
    return Array.from({ length: this.rowsPerImage }, (_, i) => base + i);
  }
}
