// What a caller may pass as an image, and turning it into 8-bit pixels: decoded pixels as they are; in
// browsers and workers a Blob/File, an ImageBitmap, a canvas, ImageData or a URL (data: URLs too),
// decoded by the browser's own codecs (createImageBitmap) and read back through an OffscreenCanvas
// without colour-space conversion or premultiplied alpha. Node has neither: importing 'tri-webgpu/node'
// installs its PNG/JPEG decoder (decodeImage) for Blobs and URLs. Resizing is ours (preprocess.ts), not the canvas's.
import { InvalidRequestError } from '../errors.ts';
import { type RawImage, checkImageSize } from './preprocess.ts';

export type ImageInput = RawImage | Blob | ImageBitmap | ImageData | OffscreenCanvas | HTMLCanvasElement | string;

/** Decodes file bytes where the runtime has no codecs of its own (Node: 'tri-webgpu/node' installs decodeImage). */
let bytesDecoder: ((bytes: Uint8Array) => RawImage) | undefined;
export function setImageBytesDecoder(decode: (bytes: Uint8Array) => RawImage): void {
  bytesDecoder = decode;
}

const isRawImage = (value: unknown): value is RawImage =>
  typeof value === 'object' && value !== null && 'data' in value && 'width' in value && 'height' in value && 'channels' in value;

/** Whether this is a value readImage accepts (checked before anything is read). */
export function isImageInput(value: unknown): value is ImageInput {
  if (typeof value === 'string' || isRawImage(value)) return true;
  const g = globalThis as Record<string, unknown>;
  return ['Blob', 'ImageBitmap', 'ImageData', 'OffscreenCanvas', 'HTMLCanvasElement'].some((name) => typeof g[name] === 'function' && value instanceof (g[name] as new () => unknown));
}

/** Pixels of an image input; a damaged or unsupported picture is an InvalidRequestError. */
export async function readImage(input: ImageInput, signal?: AbortSignal): Promise<RawImage> {
  if (isRawImage(input)) {
    checkImageSize(input.width, input.height);
    if (input.channels !== 3 && input.channels !== 4) throw new InvalidRequestError('decoded image data must have 3 (RGB) or 4 (RGBA) channels');
    return input;
  }
  if (typeof createImageBitmap !== 'function' || typeof OffscreenCanvas !== 'function') {
    // Node: a Blob or a URL (http(s), data:) is read here and decoded by the installed decoder.
    if (!bytesDecoder || !(typeof input === 'string' || input instanceof Blob)) {
      throw new InvalidRequestError("this runtime cannot decode images (no createImageBitmap): in Node, import 'tri-webgpu/node' (it decodes PNG and JPEG) or pass decodeImage(bytes)");
    }
    const blob = typeof input === 'string' ? await fetchImage(input, signal) : input;
    return bytesDecoder(new Uint8Array(await blob.arrayBuffer()));
  }
  if (typeof ImageData === 'function' && input instanceof ImageData) {
    checkImageSize(input.width, input.height);
    return { width: input.width, height: input.height, data: input.data, channels: 4 };
  }
  let source: ImageBitmap | OffscreenCanvas | HTMLCanvasElement;
  if (typeof input === 'string') {
    source = await decodeBlob(await fetchImage(input, signal));
  } else if (input instanceof Blob) {
    source = await decodeBlob(input);
  } else {
    source = input as ImageBitmap | OffscreenCanvas | HTMLCanvasElement;
  }
  checkImageSize(source.width, source.height);
  const canvas = new OffscreenCanvas(source.width, source.height);
  const context = canvas.getContext('2d', { colorSpace: 'srgb', willReadFrequently: true });
  if (!context) throw new InvalidRequestError('no 2D canvas to read the image with');
  context.drawImage(source, 0, 0);
  const { data } = context.getImageData(0, 0, source.width, source.height);
  return { width: source.width, height: source.height, data, channels: 4 };
}

async function decodeBlob(blob: Blob): Promise<ImageBitmap> {
  try {
    return await createImageBitmap(blob, { colorSpaceConversion: 'none', premultiplyAlpha: 'none' });
  } catch (error) {
    throw new InvalidRequestError(`the image cannot be decoded (${(error as Error).message || 'not a picture the browser reads'}): it is damaged, cut off or not an image`);
  }
}

async function fetchImage(url: string, signal: AbortSignal | undefined): Promise<Blob> {
  let response: Response;
  try {
    response = await fetch(url, { signal });
  } catch (error) {
    if (signal?.aborted) throw signal.reason;
    throw new InvalidRequestError(`the image at ${url.slice(0, 80)} cannot be fetched (${(error as Error).message})`);
  }
  if (!response.ok) throw new InvalidRequestError(`the image at ${url.slice(0, 80)} cannot be fetched (HTTP ${response.status})`);
  return response.blob();
}
