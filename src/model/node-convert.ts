// Node-only: convert a Hugging Face model folder on disk into an artifact folder (FORMAT.md), on the CPU.
import { mkdir, open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { type ArtifactManifest, type ArtifactSink, convertModel } from './artifact.ts';
import { graphMatrices } from './llama-gpu.ts';
import { NodeModelFiles } from './node-files.ts';
import { openModel } from './open.ts';
import type { WeightFormatOptions } from './quant.ts';

export interface ConvertFolderOptions {
  weights: WeightFormatOptions;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** Files are written under a temporary name and renamed when complete, so a cut-off run leaves no valid-looking file. */
function folderSink(directory: string): ArtifactSink {
  return {
    async create(file) {
      const path = join(directory, file);
      const handle = await open(`${path}.partial`, 'w');
      return {
        write: async (bytes) => {
          await handle.write(bytes);
        },
        close: async () => {
          await handle.close();
          await rename(`${path}.partial`, path);
        },
      };
    },
  };
}

/**
 * Converts `inputDir` (config.json, tokenizer, safetensors) into `outputDir`: the loader's typed errors
 * for unsupported or corrupt models, memory bounded by one 64 MiB part and one 32 MiB read.
 */
export async function convertModelFolder(inputDir: string, outputDir: string, options: ConvertFolderOptions): Promise<ArtifactManifest> {
  const files = new NodeModelFiles(inputDir);
  const { spec, checkpoint } = await openModel(files, options.signal);
  await mkdir(outputDir, { recursive: true });
  return convertModel(files, checkpoint, graphMatrices(spec), folderSink(outputDir), options);
}
