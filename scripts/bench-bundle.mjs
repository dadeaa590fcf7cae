/* global process, console */
// `npm run bench:bundle [-- out-folder]`: the portable benchmark bundle for headless Linux GPU servers with
// no Node and no network (default folder: bench-bundle/). One folder, at most 60 MiB:
//   run.sh             decompresses the rest into a temporary folder and runs the suite
//   bench.mjs          bench/portable.ts and everything it imports, bundled into one file (vite, SSR build)
//   node.gz            this machine's Node binary (linux-x64, gzip: present on every Linux, unlike xz)
//   webgpu/            the `webgpu` package's loader and its linux-x64 Dawn addon (dawn.node.gz) only
//   lib/libvulkan.so.1 the Vulkan loader, used only where the machine has none
//   models/tri-tiny/   the model of the correctness check
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'vite';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(process.argv[2] ?? join(ROOT, 'bench-bundle'));
const MAX_BYTES = 60 * 2 ** 20;
if (process.platform !== 'linux' || process.arch !== 'x64') throw new Error('the bundle carries this machine\'s Node binary: build it on linux-x64');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  configFile: false, root: ROOT, logLevel: 'warn', publicDir: false,
  build: {
    ssr: join(ROOT, 'bench/portable.ts'), outDir: out, emptyOutDir: false, target: 'node20', minify: true,
    rollupOptions: { output: { entryFileNames: 'bench.mjs', inlineDynamicImports: true } },
  },
  // Everything in the one file except Dawn, which the bundle carries as its own package.
  ssr: { noExternal: true, external: ['webgpu'] },
});

const gzipFile = (from, to) => writeFileSync(to, gzipSync(readFileSync(from), { level: 9 }));
gzipFile(process.execPath, join(out, 'node.gz'));
const webgpu = join(ROOT, 'node_modules/webgpu');
mkdirSync(join(out, 'webgpu'));
for (const file of ['index.js', 'package.json', 'LICENSE.md']) copyFileSync(join(webgpu, file), join(out, 'webgpu', file));
gzipFile(join(webgpu, 'dist/linux-x64/dawn.node'), join(out, 'webgpu/dawn.node.gz'));
const loader = ['/usr/lib/x86_64-linux-gnu/libvulkan.so.1', '/lib/x86_64-linux-gnu/libvulkan.so.1'].find(existsSync);
if (loader) {
  mkdirSync(join(out, 'lib'));
  copyFileSync(loader, join(out, 'lib/libvulkan.so.1'));
}
cpSync(join(ROOT, 'public/models/tri-tiny'), join(out, 'models/tri-tiny'), { recursive: true });

writeFileSync(join(out, 'run.sh'), `#!/usr/bin/env bash
# The tri-webgpu benchmark on this machine's GPU (Vulkan), with no Node install and no network:
#   ./run.sh [out-folder] [--tiny]
# Prints the suite and writes it as JSON into out-folder (default: ./tri-webgpu-bench-results).
set -euo pipefail
here="$(cd "$(dirname "\${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d "\${TMPDIR:-/tmp}/tri-webgpu-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
gzip -dc "$here/node.gz" > "$work/node"
chmod +x "$work/node"
mkdir -p "$work/node_modules/webgpu/dist/linux-x64"
cp "$here/webgpu/index.js" "$here/webgpu/package.json" "$work/node_modules/webgpu/"
gzip -dc "$here/webgpu/dawn.node.gz" > "$work/node_modules/webgpu/dist/linux-x64/dawn.node"
cp "$here/bench.mjs" "$work/"
# Dawn opens libvulkan.so.1: the machine's own when it has one, else the bundled loader.
if ! { ldconfig -p 2>/dev/null || /sbin/ldconfig -p 2>/dev/null; } | grep -q 'libvulkan.so.1' && [ -f "$here/lib/libvulkan.so.1" ]; then
  export LD_LIBRARY_PATH="$here/lib\${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
TRI_BENCH_MODELS="$here/models" "$work/node" "$work/bench.mjs" "$@"
`);
chmodSync(join(out, 'run.sh'), 0o755);

const size = (path) => (statSync(path).isDirectory() ? readdirSync(path).reduce((sum, name) => sum + size(join(path, name)), 0) : statSync(path).size);
const bytes = size(out);
console.log(`${out}: ${(bytes / 2 ** 20).toFixed(1)} MiB`);
if (bytes > MAX_BYTES) throw new Error(`the bundle is ${(bytes / 2 ** 20).toFixed(1)} MiB, over its 60 MiB budget`);
