// Running one recorded kernel and comparing its output with the CPU reference, for the kernel tests.
import { expect } from 'vitest';
import type { GpuContext } from '../../src/gpu/context.ts';
import { CommandRecorder } from '../../src/gpu/recorder.ts';
import { errorStats } from '../random.ts';

/** Records with `record`, submits, and reads `count` floats of `output` back. */
export async function runKernel(gpu: GpuContext, record: (recorder: CommandRecorder) => void, output: GPUBuffer, count: number): Promise<Float32Array> {
  const recorder = new CommandRecorder(gpu);
  record(recorder);
  recorder.submit();
  return new Float32Array(await gpu.readBack(output, count * 4));
}

/** Max-abs error normalised by the reference's largest magnitude, below `tolerance`. */
export function expectClose(name: string, actual: Float32Array, expected: Float32Array, tolerance = 1e-5): void {
  const { maxAbs, normalised } = errorStats(actual, expected);
  expect(normalised, `${name}: max-abs ${maxAbs.toExponential(2)}, normalised ${normalised.toExponential(2)}`).toBeLessThan(tolerance);
}
