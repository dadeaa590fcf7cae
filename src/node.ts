// Node-only additions to the public API: WebGPU through Dawn, model folders on disk, PNG/JPEG decoding.
import { decodeImage } from './vision/decode-node.ts';
import { setImageBytesDecoder } from './vision/image-input.ts';

export { getNodeGpu } from './gpu/node.ts';
export { NodeModelFiles } from './model/node-files.ts';
export { convertModelFolder } from './model/node-convert.ts';
export type { ConvertFolderOptions } from './model/node-convert.ts';
export { decodeImage } from './vision/decode-node.ts';

// Images given to the engine as Blobs or URLs (image_url parts) are decoded with it in Node.
setImageBytesDecoder(decodeImage);
