// Node: PNG and JPEG bytes → pixels, with pure-JS decoders (fast-png, jpeg-js: well kept, no native
// build), since Node has no createImageBitmap. Browsers decode with their own codecs (image-input.ts).
import { decode as decodePng } from 'fast-png';
import jpeg from 'jpeg-js';
import { InvalidRequestError } from '../errors.ts';
import { type RawImage, MAX_IMAGE_PIXELS, checkImageSize } from './preprocess.ts';

const isPng = (bytes: Uint8Array) => bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47;
const isJpeg = (bytes: Uint8Array) => bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;

/** Decodes a PNG or JPEG file's bytes; anything else, or a damaged file, is an InvalidRequestError. */
export function decodeImage(bytes: Uint8Array): RawImage {
  if (isJpeg(bytes)) {
    try {
      const image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6, maxMemoryUsageInMB: 1024 });
      checkImageSize(image.width, image.height);
      return { width: image.width, height: image.height, data: image.data, channels: 4 };
    } catch (error) {
      if (error instanceof InvalidRequestError) throw error;
      throw new InvalidRequestError(`the JPEG image cannot be decoded (${(error as Error).message}): it is damaged or cut off`);
    }
  }
  if (!isPng(bytes)) throw new InvalidRequestError('the image is neither PNG nor JPEG (in Node, decodeImage reads those two)');
  let png: ReturnType<typeof decodePng>;
  try {
    png = decodePng(bytes);
  } catch (error) {
    throw new InvalidRequestError(`the PNG image cannot be decoded (${(error as Error).message}): it is damaged or cut off`);
  }
  checkImageSize(png.width, png.height);
  const pixels = png.width * png.height;
  if (png.data.length < pixels * png.channels) throw new InvalidRequestError('the PNG image is cut off: it holds fewer pixels than its header says');
  const out = new Uint8Array(pixels * 4);
  const shift = png.depth === 16 ? 8 : 0;
  for (let p = 0; p < pixels; p++) {
    let rgba: [number, number, number, number];
    const at = (i: number) => png.data[p * png.channels + i]! >> shift;
    if (png.palette) {
      const entry = png.palette[png.data[p]!] ?? [0, 0, 0];
      rgba = [entry[0]!, entry[1]!, entry[2]!, entry[3] ?? 255];
    } else if (png.channels <= 2) {
      rgba = [at(0), at(0), at(0), png.channels === 2 ? at(1) : 255];
    } else {
      rgba = [at(0), at(1), at(2), png.channels === 4 ? at(3) : 255];
    }
    out.set(rgba, p * 4);
  }
  return { width: png.width, height: png.height, data: out, channels: 4 };
}
