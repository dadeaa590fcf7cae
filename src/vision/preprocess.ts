// Pixels → the vision tower's input, as HF's CLIPImageProcessor computes it: RGB, resize so the shortest
// edge is `shortestEdge` with PIL's filter, center crop, rescale (1/255), normalise by mean and std,
// channels first. The resampler is our own, written after PIL's (Pillow's Resample.c): a separable
// convolution whose kernel (bicubic a = -0.5, or bilinear) is widened by the scale when shrinking, so
// downscaling antialiases as PIL's does, horizontal pass first, each pass rounded and clipped to 8 bits
// as PIL's 8-bit images are. A canvas's drawImage resize is not used: browsers pick their own filters.
// Measured: with PIL's fixed-point weights, within 1.2e-7 of HF's pixel values for the fixture's 96×96 → 64×64
// picture (with float weights: 1.5e-2, one 8-bit step); a picture already at the crop size is exact to 1e-6.
import { InvalidRequestError } from '../errors.ts';
import type { ImagePreprocessSpec } from '../model/llava-config.ts';

/** Decoded pixels: 8-bit RGB or RGBA rows, top to bottom. */
export interface RawImage {
  width: number;
  height: number;
  /** width·height·channels bytes. */
  data: Uint8Array | Uint8ClampedArray;
  channels: 3 | 4;
}

/** Larger pictures are refused before any work (a 10000×10000 image is 400 MB of RGBA). */
export const MAX_IMAGE_PIXELS = 4096 * 4096;

export function checkImageSize(width: number, height: number): void {
  if (!Number.isSafeInteger(width) || !Number.isSafeInteger(height) || width < 1 || height < 1) throw new InvalidRequestError(`an image of ${width}×${height} pixels has nothing to see`);
  if (width * height > MAX_IMAGE_PIXELS) throw new InvalidRequestError(`an image of ${width}×${height} pixels is larger than the ${MAX_IMAGE_PIXELS / 2 ** 20} megapixels accepted; scale it down first`);
}

const bicubic = (x: number) => {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
};
const bilinear = (x: number) => Math.max(0, 1 - Math.abs(x));

/** For each output index: the first input index and the normalised weights in fixed point (PIL's precompute_coeffs and normalize_coeffs_8bpc). */
function coefficients(inSize: number, outSize: number, resample: 2 | 3): { start: number; weights: Float64Array }[] {
  const filter = resample === 3 ? bicubic : bilinear;
  const filterSupport = resample === 3 ? 2 : 1;
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);
  const support = filterSupport * filterScale;
  return Array.from({ length: outSize }, (_, xx) => {
    const center = (xx + 0.5) * scale;
    const start = Math.max(Math.trunc(center - support + 0.5), 0);
    const end = Math.min(Math.trunc(center + support + 0.5), inSize);
    const weights = new Float64Array(end - start);
    let sum = 0;
    for (let x = 0; x < weights.length; x++) sum += (weights[x] = filter((x + start - center + 0.5) / filterScale));
    // PIL's 8-bit path: weights in 22-bit fixed point, rounded away from zero.
    for (let x = 0; x < weights.length; x++) {
      const weight = weights[x]! / (sum || 1);
      weights[x] = weight < 0 ? Math.trunc(-0.5 + weight * FIXED_ONE) : Math.trunc(0.5 + weight * FIXED_ONE);
    }
    return { start, weights };
  });
}

/** 1 in PIL's fixed-point resampling weights (PRECISION_BITS = 32 − 8 − 2). */
const FIXED_ONE = 2 ** 22;
/** A fixed-point sum (which starts at one half) → 8 bits, clipped. */
const to8Bits = (sum: number) => Math.min(255, Math.max(0, Math.floor(sum / FIXED_ONE)));

/** One pass along rows (horizontal) or columns (vertical) of an RGB image. */
function resamplePass(rgb: Uint8Array, width: number, height: number, outSize: number, horizontal: boolean, resample: 2 | 3): Uint8Array {
  const inSize = horizontal ? width : height;
  const [outWidth, outHeight] = horizontal ? [outSize, height] : [width, outSize];
  const out = new Uint8Array(outWidth * outHeight * 3);
  const taps = coefficients(inSize, outSize, resample);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const { start, weights } = taps[horizontal ? x : y]!;
      for (let c = 0; c < 3; c++) {
        let sum = FIXED_ONE / 2;
        for (let i = 0; i < weights.length; i++) {
          const source = horizontal ? (y * width + start + i) * 3 + c : ((start + i) * width + x) * 3 + c;
          sum += weights[i]! * rgb[source]!;
        }
        out[(y * outWidth + x) * 3 + c] = to8Bits(sum);
      }
    }
  }
  return out;
}

/** Pixel values [3][cropHeight][cropWidth] (float32, normalised) for a decoded picture. */
export function preprocessImage(image: RawImage, spec: ImagePreprocessSpec): Float32Array {
  checkImageSize(image.width, image.height);
  if (image.data.length !== image.width * image.height * image.channels) throw new InvalidRequestError(`image data holds ${image.data.length} bytes, not ${image.width}×${image.height}×${image.channels}`);
  // RGB: alpha is dropped, as PIL's convert('RGB') does.
  let rgb: Uint8Array = new Uint8Array(image.width * image.height * 3);
  for (let i = 0, o = 0; o < rgb.length; i += image.channels, o += 3) {
    rgb[o] = image.data[i]!;
    rgb[o + 1] = image.data[i + 1]!;
    rgb[o + 2] = image.data[i + 2]!;
  }
  let { width, height } = image;
  if (spec.doResize) {
    // HF's shortest-edge size: the short side becomes shortestEdge, the long side keeps the aspect (truncated).
    const short = Math.min(width, height);
    const long = Math.max(width, height);
    const newShort = spec.shortestEdge;
    const newLong = Math.trunc((newShort * long) / short);
    const [newWidth, newHeight] = width <= height ? [newShort, newLong] : [newLong, newShort];
    if (newWidth !== width) rgb = resamplePass(rgb, width, height, newWidth, true, spec.resample);
    width = newWidth;
    if (newHeight !== height) rgb = resamplePass(rgb, width, height, newHeight, false, spec.resample);
    height = newHeight;
  }
  const { cropWidth, cropHeight } = spec;
  // HF's center_crop: the crop's top-left at half the excess (floored); a side shorter than the crop is padded with zeros.
  const top = Math.floor((height - cropHeight) / 2);
  const left = Math.floor((width - cropWidth) / 2);
  const pixels = new Float32Array(3 * cropHeight * cropWidth);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < cropHeight; y++) {
      for (let x = 0; x < cropWidth; x++) {
        const sy = y + top;
        const sx = x + left;
        const value = sy >= 0 && sy < height && sx >= 0 && sx < width ? rgb[(sy * width + sx) * 3 + c]! : 0;
        pixels[(c * cropHeight + y) * cropWidth + x] = (Math.fround(value * spec.rescaleFactor) - spec.mean[c]!) / spec.std[c]!;
      }
    }
  }
  return pixels;
}
