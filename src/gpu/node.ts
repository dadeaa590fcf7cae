// Node-only WebGPU (Dawn for Node, npm `webgpu`). On machines without a GPU, point Vulkan at
// SwiftShader: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
import { create, globals } from 'webgpu';

// Dawn aborts ("Owner died") if this object is garbage-collected while a device lives, so it is
// created once and held for the life of the process.
let nodeGpu: GPU | undefined;

export function getNodeGpu(): GPU {
  if (!nodeGpu) {
    Object.assign(globalThis, globals);
    nodeGpu = create([]) as GPU;
  }
  return nodeGpu;
}
