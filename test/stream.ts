// Reads a generation stream to its end, keeping the text deltas (browser- and Node-safe).
import type { GenerationChunk, GenerationResult } from '../src/index.ts';

export async function collectStream(stream: AsyncGenerator<GenerationChunk, GenerationResult>): Promise<{ deltas: string[]; result: GenerationResult }> {
  const deltas: string[] = [];
  for (;;) {
    const step = await stream.next();
    if (step.done) return { deltas, result: step.value };
    deltas.push(step.value.text);
  }
}
