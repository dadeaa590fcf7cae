import code from '../../kernels/argmax.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const argmaxKernel = { name: 'argmax', code, params: { count: 'u32', offset: 'u32' } } as const satisfies Kernel<ParamLayout>;

/** result[0] = index of the largest of `count` values starting at `offset` (lowest index on ties). */
export function argmax(recorder: CommandRecorder, args: { values: Binding; result: Binding; count: number; offset?: number }): void {
  recorder.dispatch(argmaxKernel, { count: args.count, offset: args.offset ?? 0 }, [args.values, args.result], 1);
}
