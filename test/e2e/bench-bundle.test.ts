// `npm run bench:bundle` builds the portable benchmark (one folder ≤ 60 MiB), and its run.sh runs the whole
// suite on a tiny config with no Node on the PATH (only bash and coreutils), here on SwiftShader: kernels,
// the synthetic model, forced-decoding agreement (f32 = 100%), and the JSON results file.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'tri-bench-bundle-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('portable benchmark bundle', () => {
  it('builds within 60 MiB and runs the tiny suite without Node on the PATH', async () => {
    const bundle = join(work, 'bundle');
    const log = execFileSync('node', ['scripts/bench-bundle.mjs', bundle], { cwd: ROOT, encoding: 'utf8' });
    const mib = Number(/: ([\d.]+) MiB/.exec(log)![1]);
    expect(mib).toBeLessThanOrEqual(60);
    expect(readdirSync(bundle).sort()).toEqual(['bench.mjs', 'lib', 'models', 'node.gz', 'run.sh', 'webgpu']);

    // A PATH with the shell tools run.sh uses and nothing else: no node, no npm.
    const bin = join(work, 'bin');
    mkdirSync(bin);
    for (const tool of ['bash', 'env', 'gzip', 'mktemp', 'mkdir', 'cp', 'chmod', 'rm', 'grep', 'dirname']) {
      symlinkSync(execFileSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim(), join(bin, tool));
    }
    const out = join(work, 'results');
    const { stdout } = await promisify(execFile)(join(bundle, 'run.sh'), [out, '--tiny'], {
      cwd: work, env: { PATH: bin, VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? '/usr/lib/chromium/vk_swiftshader_icd.json' }, timeout: 300_000,
    });
    expect(stdout).toMatch(/^adapter: .+$/m);
    expect(stdout).toMatch(/^\| copy wg=\d+×\d+ \| 64 MiB \| [\d.]+ \| [\d.]+ \| 1\.00 \|/m); // the best copy kernel
    expect(stdout).toMatch(/^\| linear q4 M=1 split-K 16 \| tiny 1024×256 \|/m);
    expect(stdout).toMatch(/^\| synthetic 4×256 q4 G=32 decode at position 128 \| [\d.]+ tok\/s \| [\d.]+ of roofline/m);
    expect(stdout).toMatch(/^\| f32: top-1 agreement with the CPU reference \| 100\.0% \|/m);
    const [file] = readdirSync(out);
    const results = JSON.parse(readFileSync(join(out, file!), 'utf8'));
    expect(results.tiny).toBe(true);
    expect(results.copyGBs).toBeGreaterThan(0);
    expect(results.synthetic).toHaveLength(5);
    expect(results.agreement.find((row: { format: string }) => row.format === 'f32')).toMatchObject({ agreeing: results.agreement[0].positions });
  }, 600_000);
});
