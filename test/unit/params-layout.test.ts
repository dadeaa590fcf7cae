// Each kernel's Params struct in WGSL must match, field by field, the layout its op packs in TS.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { attentionReduceKernel, pagedAttentionKernel } from '../../src/ops/attention.ts';
import { embeddingKernel } from '../../src/ops/embedding.ts';
import { gatherRowsKernel } from '../../src/ops/gather-rows.ts';
import { subgroupVariant } from '../../src/gpu/shader-variants.ts';
import { linearKernel, linearSubgroupKernel } from '../../src/ops/linear.ts';
import { quantizeKernel } from '../../src/ops/quantize.ts';
import { ropeKvKernel } from '../../src/ops/rope-kv.ts';
import { linearTiledKernel } from '../../src/ops/linear-tiled.ts';
import { SAMPLE_ROW_BYTES, SAMPLE_ROW_LAYOUT, sampleKernel, sampleSubgroupKernel } from '../../src/ops/sample.ts';

const kernels = [
  pagedAttentionKernel, attentionReduceKernel, embeddingKernel, gatherRowsKernel, linearKernel, linearSubgroupKernel, linearTiledKernel, quantizeKernel, ropeKvKernel,
  sampleKernel, sampleSubgroupKernel,
];

/** The fields of `struct name { … }` in WGSL source, as [name, type]. */
function structFields(source: string, name: string): string[][] | undefined {
  const body = new RegExp(`struct ${name} \\{([^}]*)\\}`).exec(source)?.[1];
  return body === undefined ? undefined : [...body.matchAll(/(\w+)\s*:\s*(\w+)/g)].map(([, field, type]) => [field!, type!]);
}

describe('Params structs mirror WGSL', () => {
  for (const kernel of kernels) {
    // A name "op.subgroups" is the variant of kernels/op.wgsl for devices with subgroups.
    const [file, variant] = kernel.name.split('.');
    it(`${kernel.name}: kernels/${file}.wgsl`, () => {
      const source = readFileSync(new URL(`../../kernels/${file}.wgsl`, import.meta.url), 'utf8');
      expect(subgroupVariant(source, variant === 'subgroups')).toBe(kernel.code);
      const body = /struct Params \{([^}]*)\}/.exec(source)?.[1];
      expect(body, 'struct Params not found').toBeDefined();
      const fields = [...body!.matchAll(/(\w+)\s*:\s*(\w+)/g)].map(([, name, type]) => [name, type]);
      // Only 4-byte scalars: offsets are 4·index, and the struct fits one 256-byte uniform slot.
      expect(fields).toEqual(Object.entries(kernel.params));
      expect(fields.length * 4).toBeLessThanOrEqual(256);
    });
  }
});

describe('the sampler\'s per-row settings mirror WGSL', () => {
  it('struct SampleRow in kernels/sample.wgsl = SAMPLE_ROW_LAYOUT (16-byte aligned rows)', () => {
    const fields = structFields(sampleKernel.code, 'SampleRow');
    expect(fields).toEqual(Object.entries(SAMPLE_ROW_LAYOUT));
    expect(SAMPLE_ROW_BYTES % 16).toBe(0);
  });
});
