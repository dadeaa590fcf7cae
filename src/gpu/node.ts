// Node-only WebGPU through Dawn for Node (the npm package `webgpu`, an optional peer dependency: browser
// apps never install it). On machines without a GPU, point Vulkan at SwiftShader:
// VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
import { totalmem } from 'node:os';
import { WebGPUUnavailableError } from '../errors.ts';
import { setSystemMemory } from './context.ts';

// Dawn aborts ("Owner died") if this object is garbage-collected while a device lives, so it is
// created once and held for the life of the process.
let nodeGpu: Promise<GPU> | undefined;

/** WebGPU for Node: `TriEngine.load(files, { gpu: await getNodeGpu() })`. */
export function getNodeGpu(): Promise<GPU> {
  nodeGpu ??= loadDawn().catch((error: unknown) => {
    nodeGpu = undefined; // let a later call try again (after `npm install webgpu`)
    throw error;
  });
  return nodeGpu;
}

async function loadDawn(): Promise<GPU> {
  // The specifier is a variable so that bundlers of browser apps do not try to resolve the package.
  const packageName = 'webgpu';
  let dawn: { create(flags: string[]): unknown; globals: object };
  try {
    dawn = (await import(/* @vite-ignore */ packageName)) as typeof dawn;
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND';
    throw new WebGPUUnavailableError(
      missing
        ? 'WebGPU for Node needs the package "webgpu" (Dawn): run `npm install webgpu`'
        : `the package "webgpu" (Dawn for Node) failed to load: ${(error as Error).message}`,
      { cause: error },
    );
  }
  Object.assign(globalThis, dawn.globals);
  setSystemMemory(totalmem()); // SwiftShader (no GPU) allocates system memory: the budget of a CPU adapter
  return dawn.create([]) as GPU;
}
