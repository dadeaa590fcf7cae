// Each kernel's Params struct in WGSL must match, field by field, the layout its op packs in TS.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { attentionReduceKernel, pagedAttentionKernel } from '../../src/ops/attention.ts';
import { embeddingKernel } from '../../src/ops/embedding.ts';
import { gatherRowsKernel } from '../../src/ops/gather-rows.ts';
import { linearKernel } from '../../src/ops/linear.ts';
import { quantizeKernel } from '../../src/ops/quantize.ts';
import { ropeKvKernel } from '../../src/ops/rope-kv.ts';
import { sampleKernel } from '../../src/ops/sample.ts';

const kernels = [pagedAttentionKernel, attentionReduceKernel, embeddingKernel, gatherRowsKernel, linearKernel, quantizeKernel, ropeKvKernel, sampleKernel];

describe('Params structs mirror WGSL', () => {
  for (const kernel of kernels) {
    it(`${kernel.name}: kernels/${kernel.name}.wgsl`, () => {
      const source = readFileSync(new URL(`../../kernels/${kernel.name}.wgsl`, import.meta.url), 'utf8');
      expect(source).toBe(kernel.code);
      const body = /struct Params \{([^}]*)\}/.exec(source)?.[1];
      expect(body, 'struct Params not found').toBeDefined();
      const fields = [...body!.matchAll(/(\w+)\s*:\s*(\w+)/g)].map(([, name, type]) => [name, type]);
      // Only 4-byte scalars: offsets are 4·index, and the struct fits one 256-byte uniform slot.
      expect(fields).toEqual(Object.entries(kernel.params));
      expect(fields.length * 4).toBeLessThanOrEqual(256);
    });
  }
});
