import code from '../../kernels/embedding.wgsl?raw';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';

export const embeddingKernel = { name: 'embedding', code, params: { tokens: 'u32', hidden: 'u32' } } as const satisfies Kernel<ParamLayout>;

/** y[t] = table[tokenIds[t]] for `tokens` ids (u32). */
export function embedding(
  recorder: CommandRecorder,
  args: { tokenIds: Binding; table: Binding; y: Binding; tokens: number; hidden: number },
): void {
  recorder.dispatch(
    embeddingKernel,
    { tokens: args.tokens, hidden: args.hidden },
    [args.tokenIds, args.table, args.y],
    Math.ceil((args.tokens * args.hidden) / 64),
  );
}
