import code from '../../kernels/matmul.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const matmulKernel = {
  name: 'matmul',
  code,
  params: { m: 'u32', n: 'u32', k: 'u32', xOffset: 'u32', yOffset: 'u32', accumulate: 'u32' },
} as const satisfies Kernel<ParamLayout>;

const ROWS_PER_THREAD = 4; // matches matmul.wgsl

export interface MatmulArgs {
  x: Binding; // [m][k] starting at xOffset
  w: Binding; // [n][k]
  y: Binding; // [m][n] starting at yOffset
  m: number;
  n: number;
  k: number;
  xOffset?: number;
  yOffset?: number;
  /** Add into y instead of overwriting it (residual connection). */
  accumulate?: boolean;
}

/** y (+)= x · Wᵀ in f32. */
export function matmul(recorder: CommandRecorder, args: MatmulArgs): void {
  // The kernel reads x and W as vec4; every Llama width we know (64, 172, 256, 688, 4096, 11008) is a multiple of 4.
  if (args.k % 4 !== 0 || (args.xOffset ?? 0) % 4 !== 0) {
    throw new GpuLimitError(`matmul: K=${args.k} and xOffset=${args.xOffset ?? 0} must be multiples of 4`);
  }
  recorder.dispatch(
    matmulKernel,
    {
      m: args.m,
      n: args.n,
      k: args.k,
      xOffset: args.xOffset ?? 0,
      yOffset: args.yOffset ?? 0,
      accumulate: args.accumulate ? 1 : 0,
    },
    [args.x, args.w, args.y],
    Math.ceil((args.n * Math.ceil(args.m / ROWS_PER_THREAD)) / 64),
  );
}
