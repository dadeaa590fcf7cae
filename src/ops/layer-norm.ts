import code from '../../kernels/layer-norm.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const layerNormKernel = { name: 'layer-norm', code, params: { rows: 'u32', width: 'u32', eps: 'f32' } } as const satisfies Kernel<ParamLayout>;

/** y = LayerNorm(x) · weight + bias, row by row, for `rows` rows of `width` (y may not be x). */
export function layerNorm(recorder: CommandRecorder, args: { x: Binding; weight: Binding; bias: Binding; y: Binding; rows: number; width: number; eps: number }): void {
  recorder.dispatch(layerNormKernel, { rows: args.rows, width: args.width, eps: args.eps }, [args.x, args.weight, args.bias, args.y], args.rows);
}
