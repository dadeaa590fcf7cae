import code from '../../kernels/rmsnorm.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const rmsnormKernel = {
  name: 'rmsnorm',
  code,
  params: { rows: 'u32', dim: 'u32', eps: 'f32', xOffset: 'u32' },
} as const satisfies Kernel<ParamLayout>;

/** y[r] = weight · x[r] / rms(x[r]) for `rows` rows of `dim`, reading x from xOffset (elements). */
export function rmsnorm(
  recorder: CommandRecorder,
  args: { x: Binding; weight: Binding; y: Binding; rows: number; dim: number; eps: number; xOffset?: number },
): void {
  recorder.dispatch(
    rmsnormKernel,
    { rows: args.rows, dim: args.dim, eps: args.eps, xOffset: args.xOffset ?? 0 },
    [args.x, args.weight, args.y],
    args.rows,
  );
}
