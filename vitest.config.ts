import { playwright } from '@vitest/browser-playwright';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import { CHROMIUM_PATH, CHROMIUM_WEBGPU_ARGS } from './test/chromium.ts';

// Dawn for Node finds SwiftShader (a CPU Vulkan) through this ICD file, shipped with Debian's chromium.
process.env.VK_ICD_FILENAMES ??= '/usr/lib/chromium/vk_swiftshader_icd.json';

export default defineConfig({
  server: { fs: { allow: ['..'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'node',
          include: ['test/{unit,gpu,e2e}/**/*.test.ts'],
          // The 7B benchmark (writes ~19 GB) runs only through npm run bench:tri7b.
          benchmark: process.env.BENCH_TRI7B ? { include: ['bench/tri7b.bench.ts'] } : { include: ['bench/**/*.bench.ts'], exclude: ['bench/tri7b.bench.ts'] },
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
      {
        // npm run test:fuzz: generated hostile input through the public API (seeded, bounded; .ci/run runs it).
        extends: true,
        test: {
          name: 'fuzz',
          include: ['test/fuzz/**/*.test.ts'],
          environment: 'node',
          testTimeout: 600_000,
          hookTimeout: 120_000,
        },
      },
      {
        // npm run test:package: the packed tarball in fresh projects (slow: npm installs); .ci/run runs it.
        extends: true,
        test: {
          name: 'package',
          include: ['test/package/**/*.test.ts'],
          environment: 'node',
          testTimeout: 300_000,
          hookTimeout: 600_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          globalSetup: ['test/browser/artifact-setup.ts'],
          testTimeout: 120_000,
          // Fixture models are served by Vite's dev server from ../shared/models (Range requests work there).
          provide: { modelsUrl: `/@fs${fileURLToPath(new URL('../shared/models/', import.meta.url))}` },
          browser: {
            enabled: true,
            headless: true,
            provider: playwright({ launchOptions: { executablePath: CHROMIUM_PATH, args: CHROMIUM_WEBGPU_ARGS } }),
            instances: [{ browser: 'chromium' }],
          },
        },
      },
    ],
  },
});
