import code from '../../kernels/bias-activation.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import type { VisionActivation } from '../model/llava-config.ts';

export const biasActivationKernel = { name: 'bias-activation', code, params: { rows: 'u32', width: 'u32' } } as const satisfies Kernel<ParamLayout>;

const ACTIVATION_CODE: Record<VisionActivation | 'none', number> = { none: 0, quick_gelu: 1, gelu: 2 };

/** In place: y = activation(y + bias) over `rows` rows of `width`; the bias is one row, or one per row. */
export function biasActivation(recorder: CommandRecorder, args: { bias: Binding; y: Binding; rows: number; width: number; activation?: VisionActivation; biasPerRow?: boolean }): void {
  recorder.dispatch(biasActivationKernel, { rows: args.rows, width: args.width }, [args.bias, args.y], Math.ceil((args.rows * args.width) / 64), {
    ACTIVATION: ACTIVATION_CODE[args.activation ?? 'none'],
    BIAS_PER_ROW: args.biasPerRow ? 1 : 0,
  });
}
