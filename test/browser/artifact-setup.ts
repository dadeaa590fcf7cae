// Global setup of the browser tests (runs in Node): a tri-tiny f32 artifact on disk for the OPFS tests,
// converted with the CLI's code; the page reaches it through Vite's /@fs route.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { TestProject } from 'vitest/node';
import { MANIFEST_FILE } from '../../src/model/artifact.ts';
import { convertModelFolder } from '../../src/model/node-convert.ts';
import { modelDir } from '../fixtures.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    artifactUrl: string;
  }
}

export default async function setup(project: TestProject): Promise<void> {
  const directory = fileURLToPath(new URL('../../node_modules/.cache/tri-webgpu/test-artifacts/tri-tiny-f32/', import.meta.url));
  if (!existsSync(`${directory}${MANIFEST_FILE}`)) await convertModelFolder(modelDir('tri-tiny'), directory, { weights: { format: 'f32' } });
  project.provide('artifactUrl', `/@fs${directory}`);
}
