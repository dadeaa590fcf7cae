// One GpuContext for all GPU tests in a file, on Dawn for Node. No WebGPU here is a failure, not a skip.
import { GpuContext } from '../../src/gpu/context.ts';
import { getNodeGpu } from '../../src/gpu/node.ts';

let context: Promise<GpuContext> | undefined;

export function nodeGpuContext(): Promise<GpuContext> {
  context ??= getNodeGpu().then((gpu) => GpuContext.create(gpu));
  return context;
}
