// The two variants of a kernel with a subgroup path (src/gpu/shader-variants.ts).
import { describe, expect, it } from 'vitest';
import { subgroupVariant } from '../../src/gpu/shader-variants.ts';
import linearCode from '../../kernels/linear.wgsl?raw';
import sampleCode from '../../kernels/sample.wgsl?raw';

const code = ['// a kernel', 'fn a() {}', '//#if subgroups', 'fn b() { subgroupAdd(1.0); }', '//#else', 'fn b() {}', '//#endif', 'fn c() {}'].join('\n');

describe('subgroupVariant', () => {
  it('keeps the first branches after `enable subgroups;`, or the #else branches, on the same line numbers', () => {
    const withSubgroups = subgroupVariant(code, true).split('\n');
    const without = subgroupVariant(code, false).split('\n');
    expect(withSubgroups).toEqual(['enable subgroups; // a kernel', 'fn a() {}', '', 'fn b() { subgroupAdd(1.0); }', '', '', '', 'fn c() {}']);
    expect(without).toEqual(['// a kernel', 'fn a() {}', '', '', '', 'fn b() {}', '', 'fn c() {}']);
  });

  it('refuses unbalanced or nested directives', () => {
    expect(() => subgroupVariant('//#if subgroups\nfn a() {}', true)).toThrow(/without \/\/#endif/);
    expect(() => subgroupVariant('//#else\n', false)).toThrow(/line 1: \/\/#else without/);
    expect(() => subgroupVariant('//#if subgroups\n//#if subgroups\n', false)).toThrow(/line 2: nested/);
    expect(() => subgroupVariant('//#endif\n', true)).toThrow(/line 1: \/\/#endif without/);
  });

  it('leaves no subgroup builtin in the variants of the kernels for devices without subgroups', () => {
    for (const kernel of [linearCode, sampleCode]) {
      expect(subgroupVariant(kernel, false)).not.toMatch(/subgroup[A-Z]|subgroup_|enable subgroups/);
      expect(subgroupVariant(kernel, true)).toMatch(/^enable subgroups;[^\n]*\n[\s\S]*subgroup(ShuffleXor|Add)\(/);
    }
  });
});
