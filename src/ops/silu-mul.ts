import code from '../../kernels/silu-mul.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const siluMulKernel = { name: 'silu-mul', code, params: { count: 'u32' } } as const satisfies Kernel<ParamLayout>;

/** gate ← silu(gate) · up, elementwise over `count` values. */
export function siluMul(recorder: CommandRecorder, args: { gate: Binding; up: Binding; count: number }): void {
  recorder.dispatch(siluMulKernel, { count: args.count }, [args.gate, args.up], Math.ceil(args.count / 64));
}
