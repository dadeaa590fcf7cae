import code from '../../kernels/random-fill.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const randomFillKernel = { name: 'random-fill', code, params: { words: 'u32', seed: 'u32', mode: 'u32', amplitude: 'f32' } } as const satisfies Kernel<ParamLayout>;

export type RandomFillMode = 'bits' | 'f16' | 'f32';
const MODES: Record<RandomFillMode, number> = { bits: 0, f16: 1, f32: 2 };

/** Writes `words` pseudo-random u32 words into `out`, the same for the same seed (kernels/random-fill.wgsl). */
export function randomFill(recorder: CommandRecorder, args: { out: Binding; words: number; seed: number; mode: RandomFillMode; amplitude?: number }): void {
  const params = { words: args.words, seed: args.seed >>> 0, mode: MODES[args.mode], amplitude: args.amplitude ?? 1 };
  recorder.dispatch(randomFillKernel, params, [args.out], Math.ceil(args.words / 64));
}
