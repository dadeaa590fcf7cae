// Node-only additions to the public API: WebGPU through Dawn, and model folders on disk.
export { getNodeGpu } from './gpu/node.ts';
export { NodeModelFiles } from './model/node-files.ts';
export { convertModelFolder } from './model/node-convert.ts';
export type { ConvertFolderOptions } from './model/node-convert.ts';
export { decodeImage } from './vision/decode-node.ts';
