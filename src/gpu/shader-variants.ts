// WGSL has no preprocessor, and a module that names a subgroup builtin does not compile on a device without
// the `subgroups` feature, even in a branch an override constant turns off. So a kernel with a subgroup
// path marks its two versions with whole-line directives (not nested):
//   //#if subgroups
//   ... code for devices with subgroups ...
//   //#else
//   ... code for the others ...
//   //#endif
// and is compiled as one of two variants: with subgroups (the first branches, after `enable subgroups;`)
// or without (the `#else` branches). Lines are blanked, not removed, so compiler messages keep their
// line numbers.

const DIRECTIVE = /^\s*\/\/#(if subgroups|else|endif)\s*$/;

/** The variant of `code` for a device with (true) or without (false) the `subgroups` feature. */
export function subgroupVariant(code: string, subgroups: boolean): string {
  let branch: 'none' | 'if' | 'else' = 'none';
  const lines = code.split('\n').map((line, index) => {
    const directive = DIRECTIVE.exec(line)?.[1];
    const where = `line ${index + 1}`;
    if (directive === 'if subgroups') {
      if (branch !== 'none') throw new SyntaxError(`${where}: nested //#if subgroups`);
      branch = 'if';
      return '';
    }
    if (directive === 'else') {
      if (branch !== 'if') throw new SyntaxError(`${where}: //#else without //#if subgroups`);
      branch = 'else';
      return '';
    }
    if (directive === 'endif') {
      if (branch === 'none') throw new SyntaxError(`${where}: //#endif without //#if subgroups`);
      branch = 'none';
      return '';
    }
    const kept = branch === 'none' || (branch === 'if') === subgroups;
    return kept ? line : '';
  });
  if (branch !== 'none') throw new SyntaxError('//#if subgroups without //#endif');
  // `enable` must precede every declaration; put it on the first line (a comment there) to keep numbering.
  if (subgroups) lines[0] = `enable subgroups; ${lines[0]!.startsWith('//') ? lines[0] : `\n${lines[0]}`}`;
  return lines.join('\n');
}
