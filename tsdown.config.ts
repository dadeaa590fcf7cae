// The npm package (npm run build:lib, run by prepack): ESM for the four entries with every WGSL shader
// inlined as a string, and bundled .d.ts files. tsdown (Rolldown + rolldown-plugin-dts) because it does
// both in one pass from the TypeScript sources, keeps shared code in shared chunks, and is the library
// bundler of the Vite/Rolldown toolchain the demo already uses.
import { readFile } from 'node:fs/promises';
import { defineConfig } from 'tsdown';

export default defineConfig({
  entry: { index: 'src/index.ts', node: 'src/node.ts', worker: 'src/worker/index.ts', eval: 'src/eval/index.ts', cli: 'src/cli.ts' },
  outDir: 'dist',
  format: 'esm',
  platform: 'neutral',
  target: 'es2022',
  tsconfig: 'tsconfig.lib.json',
  dts: true,
  // The public types use WebGPU's (GPU, GPUDevice): every .d.ts pulls in @webgpu/types, a dependency.
  banner: { dts: '/// <reference types="@webgpu/types" />' },
  outputOptions: { chunkFileNames: 'chunks/[name]-[hash].js' },
  clean: true,
  // Runtime dependencies stay imports (the app's bundler dedupes them); `webgpu` is loaded lazily by getNodeGpu.
  deps: { neverBundle: ['@huggingface/jinja', '@huggingface/tokenizers', 'fast-png', 'hyparquet', 'jpeg-js', 'papaparse', 'webgpu', /^node:/] },
  plugins: [
    {
      // `import code from '../../kernels/x.wgsl?raw'` (Vite's syntax, used by the demo and tests) → a string.
      name: 'wgsl-raw',
      resolveId: { filter: { id: /\.wgsl\?raw$/ }, handler: (id, importer) => ({ id: new URL(id, `file://${importer}`).pathname + '?raw' }) },
      load: {
        filter: { id: /\.wgsl\?raw$/ },
        handler: async (id) => ({ code: `export default ${JSON.stringify(await readFile(id.slice(0, -'?raw'.length), 'utf8'))};`, moduleType: 'js' }),
      },
    },
  ],
});
