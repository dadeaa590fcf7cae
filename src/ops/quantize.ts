import code from '../../kernels/quantize.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import { FORMAT_CODE, type WeightLayout } from '../model/quant.ts';

export const quantizeKernel = {
  name: 'quantize',
  code,
  params: { rows: 'u32', k: 'u32', paddedK: 'u32', paddedN: 'u32', rowOffset: 'u32', columnScaled: 'u32' },
} as const satisfies Kernel<ParamLayout>;

export type SourceDtype = 'F32' | 'F16' | 'BF16';
const SOURCE_CODE: Record<SourceDtype, number> = { F32: 0, F16: 1, BF16: 2 };

export interface QuantizeArgs {
  /** `rows` source rows of K values, row-major, in `sourceDtype` (the checkpoint's bytes as they are). */
  source: Binding;
  sourceDtype: SourceDtype;
  rows: number;
  /** Destination row of source row 0. */
  rowOffset: number;
  layout: WeightLayout;
  data: Binding;
  /** q4 scales; must start zeroed (halves are OR-ed in). */
  scales: Binding;
  /** Multiplies column k by columnScale[k] (a folded RMSNorm weight); a placeholder when absent. */
  columnScale: Binding;
  columnScaled: boolean;
  /** One u32, set to 0xffffffff before: receives the lowest chunk row holding a NaN or ±Inf. */
  nonFinite: Binding;
}

/** Converts checkpoint rows to a GPU weight format (bit-identical to packWeights in src/model/quant.ts). */
export function quantize(recorder: CommandRecorder, args: QuantizeArgs): void {
  const { layout } = args;
  const perInvocation = layout.format === 'q4' ? layout.groupSize : 4;
  recorder.dispatch(
    quantizeKernel,
    { rows: args.rows, k: layout.k, paddedK: layout.paddedK, paddedN: layout.paddedN, rowOffset: args.rowOffset, columnScaled: args.columnScaled ? 1 : 0 },
    [args.source, args.columnScale, args.data, args.scales, args.nonFinite],
    Math.ceil((args.rows * (layout.paddedK / perInvocation)) / 64),
    {
      SOURCE: SOURCE_CODE[args.sourceDtype],
      FORMAT: FORMAT_CODE[layout.format],
      GROUP_SIZE: layout.groupSize || 32,
      HAS_MIN: layout.withMin ? 1 : 0,
    },
  );
}
