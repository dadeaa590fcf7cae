import code from '../../kernels/embedding.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import { FORMAT_CODE } from '../model/quant.ts';
import type { GpuMatrix } from './linear.ts';

export const embeddingKernel = {
  name: 'embedding',
  code,
  params: { tokens: 'u32', hidden: 'u32', paddedN: 'u32', rowStart: 'u32', rows: 'u32' },
} as const satisfies Kernel<ParamLayout>;

/** y[t] = table[tokenIds[t]] for `tokens` ids (u32), dequantized to f32; one dispatch per part of the table. */
export function embedding(recorder: CommandRecorder, args: { tokenIds: Binding; table: GpuMatrix; y: Binding; tokens: number }): void {
  const { layout } = args.table;
  for (const part of args.table.parts) {
    recorder.dispatch(
      embeddingKernel,
      { tokens: args.tokens, hidden: layout.k, paddedN: part.layout.paddedN, rowStart: part.outputStart, rows: part.outputs },
      [args.tokenIds, part.data, part.scales, args.y],
      Math.ceil((args.tokens * layout.k) / 64),
      { FORMAT: FORMAT_CODE[layout.format], GROUP_SIZE: layout.groupSize || 32, HAS_MIN: layout.withMin ? 1 : 0 },
    );
  }
}
