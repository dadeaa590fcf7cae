import code from '../../kernels/linear.wgsl?raw';
import { GpuLimitError } from '../errors.ts';
import type { GpuContext } from '../gpu/context.ts';
import type { Binding, CommandRecorder, Kernel, ParamLayout } from '../gpu/recorder.ts';
import { subgroupVariant } from '../gpu/shader-variants.ts';
import { FORMAT_CODE, type WeightLayout } from '../model/quant.ts';

export const linearKernel = {
  name: 'linear',
  code: subgroupVariant(code, false),
  params: { m: 'u32', n: 'u32', k: 'u32', rowQuads: 'u32', xOffset: 'u32', xStride: 'u32', yOffset: 'u32', yStride: 'u32', eps: 'f32' },
} as const satisfies Kernel<ParamLayout>;

/** The same kernel for devices with `subgroups`: split-K GEMVs add their shares with subgroup shuffles. */
export const linearSubgroupKernel = { ...linearKernel, name: 'linear.subgroups', code: subgroupVariant(code, true) } as const satisfies Kernel<ParamLayout>;

/**
 * A weight matrix on the GPU, possibly in several row ranges ("parts") when one buffer would exceed the
 * device's binding limit. Part p computes outputs [outputStart, outputStart + outputs); for a SiLU-gated
 * pair it stores gate rows of that range, then up rows from row ceil(outputs / 4) · 4.
 */
export interface GpuMatrix {
  readonly layout: WeightLayout; // the whole logical matrix
  readonly gatedPair: boolean;
  readonly parts: readonly GpuMatrixPart[];
}

export interface GpuMatrixPart {
  readonly outputStart: number;
  readonly outputs: number;
  readonly layout: WeightLayout; // this part's rows
  readonly data: GPUBuffer;
  readonly scales: GPUBuffer; // a small placeholder unless q4
}

export type LinearEpilogue = 'store' | 'accumulate' | 'siluGate';
const EPILOGUE_CODE: Record<LinearEpilogue, number> = { store: 0, accumulate: 1, siluGate: 2 };

export interface LinearArgs {
  x: Binding; //  [m][k], row r at xOffset + r · xStride
  weights: GpuMatrix;
  y: Binding; //  [m][outputs], row r at yOffset + r · yStride
  m: number;
  xOffset?: number;
  xStride?: number;
  yOffset?: number;
  yStride?: number;
  /** RMSNorm each row of x first (its weight is folded into the matrix at load). */
  normalizeEps?: number;
  epilogue?: LinearEpilogue;
  /** GEMV only (m = 1): invocations sharing each row quad's K range (1, 4 or 16; see linear.wgsl). */
  splitK?: number;
  /**
   * With splitK > 1: add the shares with subgroup shuffles instead of workgroup memory and a barrier. Needs
   * the `subgroups` feature and splitK ≤ the adapter's smallest subgroup size.
   */
  subgroups?: boolean;
}

export const LINEAR_SPLIT_K_CHOICES = [1, 4, 16] as const;

/** A decode GEMV variant: its split-K and whether the shares add by subgroup shuffles. */
export interface GemvChoice {
  splitK: number;
  subgroups: boolean;
}

/** Every GEMV variant this device can run: each split-K, and each split > 1 that fits its smallest subgroup by shuffles. */
export function linearGemvChoices(capabilities: { subgroups: boolean; subgroupMinSize: number }, splits: readonly number[] = LINEAR_SPLIT_K_CHOICES): GemvChoice[] {
  return [
    ...splits.map((splitK) => ({ splitK, subgroups: false })),
    ...splits.filter((splitK) => capabilities.subgroups && splitK > 1 && splitK <= capabilities.subgroupMinSize).map((splitK) => ({ splitK, subgroups: true })),
  ];
}

/** Rows of x per invocation: 1 for decode (GEMV); for prefill each unpacked weight serves 4 rows. */
export function linearRowsPerInvocation(m: number): number {
  return m === 1 ? 1 : 4;
}

/** What every linear kernel (row quads here, tiles in linear-tiled.ts) derives from its arguments. */
export interface LinearShape {
  k: number;
  /** Outputs of the whole matrix (all parts): y's default row stride. */
  outputs: number;
  xOffset: number;
  xStride: number;
  epilogue: LinearEpilogue;
}

/** Checks what every linear kernel needs (x read as vec4, siluGate exactly for a gate/up pair). */
export function linearShape(args: LinearArgs): LinearShape {
  const { weights } = args;
  const { k } = weights.layout;
  const xOffset = args.xOffset ?? 0;
  const xStride = args.xStride ?? k;
  if (k % 4 !== 0 || xOffset % 4 !== 0 || xStride % 4 !== 0) {
    throw new GpuLimitError(`linear: K=${k}, xOffset=${xOffset} and xStride=${xStride} must be multiples of 4 (x is read as vec4)`);
  }
  const epilogue = args.epilogue ?? 'store';
  if ((epilogue === 'siluGate') !== weights.gatedPair) throw new GpuLimitError('linear: the siluGate epilogue needs a gate/up pair matrix, and only it');
  return { k, outputs: weights.parts.reduce((sum, part) => sum + part.outputs, 0), xOffset, xStride, epilogue };
}

/** The override constants both linear kernels share: weight format, norm and epilogue. */
export function linearConstants(args: LinearArgs, shape: LinearShape): { FORMAT: number; GROUP_SIZE: number; HAS_MIN: number; NORMALIZE: number; EPILOGUE: number } {
  const { layout } = args.weights;
  return {
    FORMAT: FORMAT_CODE[layout.format],
    GROUP_SIZE: layout.groupSize || 32,
    HAS_MIN: layout.withMin ? 1 : 0,
    NORMALIZE: args.normalizeEps === undefined ? 0 : 1,
    EPILOGUE: EPILOGUE_CODE[shape.epilogue],
  };
}

/** Params of one part's dispatch (the same struct in linear.wgsl and linear-tiled.wgsl). */
export function linearPartParams(args: LinearArgs, shape: LinearShape, part: GpuMatrixPart): { [K in keyof typeof linearKernel.params]: number } {
  return {
    m: args.m, n: part.outputs, k: shape.k, rowQuads: part.layout.paddedN / 4, xOffset: shape.xOffset, xStride: shape.xStride,
    yOffset: (args.yOffset ?? 0) + part.outputStart, yStride: args.yStride ?? shape.outputs, eps: args.normalizeEps ?? 0,
  };
}

/** y = epilogue(x · Wᵀ), one dispatch per part. */
export function linear(recorder: CommandRecorder, args: LinearArgs): void {
  const { weights, m } = args;
  const shape = linearShape(args);
  const rows = linearRowsPerInvocation(m);
  const splitK = m === 1 ? (args.splitK ?? 1) : 1;
  if (!(LINEAR_SPLIT_K_CHOICES as readonly number[]).includes(splitK)) throw new GpuLimitError(`linear: splitK must be one of ${LINEAR_SPLIT_K_CHOICES.join(', ')}`);
  const subgroups = splitK > 1 && (args.subgroups ?? false);
  if (subgroups && !recorder.gpu.capabilities.subgroups) throw new GpuLimitError('linear: subgroup reductions need a device with the "subgroups" feature');
  if (subgroups && splitK > recorder.gpu.capabilities.subgroupMinSize) {
    throw new GpuLimitError(`linear: split-K ${splitK} with subgroups needs subgroups of at least ${splitK} lanes (this adapter's smallest: ${recorder.gpu.capabilities.subgroupMinSize})`);
  }
  const constants = { ...linearConstants(args, shape), ROWS: rows, SPLIT_K: splitK };
  for (const part of weights.parts) {
    recorder.dispatch(
      subgroups ? linearSubgroupKernel : linearKernel, linearPartParams(args, shape, part), [args.x, part.data, part.scales, args.y],
      Math.ceil((Math.ceil(part.outputs / 4) * Math.ceil(m / rows) * splitK) / 64), constants,
    );
  }
}

const placeholders = new WeakMap<GpuContext, Map<string, GPUBuffer>>();

/**
 * A 16-byte buffer bound where a kernel variant declares but never uses a binding (e.g. scales of f16).
 * Distinct `role`s give distinct buffers: WebGPU forbids one buffer as both read-only and writable in a pass.
 */
export function placeholderBuffer(gpu: GpuContext, role: 'read' | 'write' = 'read'): GPUBuffer {
  let buffers = placeholders.get(gpu);
  if (!buffers) placeholders.set(gpu, (buffers = new Map()));
  let buffer = buffers.get(role);
  if (!buffer) buffers.set(role, (buffer = gpu.createBuffer(`placeholder.${role}`, 16)));
  return buffer;
}
