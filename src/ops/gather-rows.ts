import code from '../../kernels/gather-rows.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const gatherRowsKernel = { name: 'gather-rows', code, params: { count: 'u32', width: 'u32' } } as const satisfies Kernel<ParamLayout>;

/** y[i] = x[rowIds[i]] for `count` rows of `width` (a multiple of 4) values. */
export function gatherRows(recorder: CommandRecorder, args: { rowIds: Binding; x: Binding; y: Binding; count: number; width: number }): void {
  recorder.dispatch(gatherRowsKernel, { count: args.count, width: args.width }, [args.rowIds, args.x, args.y], Math.ceil((args.count * args.width) / 4 / 64));
}
