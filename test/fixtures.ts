// Paths and golden files of the shared fixture models (../shared/models, beside the checkout).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const MODELS_DIR = fileURLToPath(new URL('../../shared/models/', import.meta.url));
export const modelDir = (name: 'stories260k' | 'tri-tiny' | 'tri-tiny-chat') => `${MODELS_DIR}${name}`;

export interface StoriesCase {
  prompt: string;
  prompt_ids: number[];
  generated_ids: number[];
  first_gen_top5: { id: number; logit: number }[];
  generated_text: string;
}

export interface TriTinyCase {
  name: string;
  prompt: string;
  messages?: { role: string; content: string }[];
  prompt_ids: number[];
  last_top5: [number, number][];
  greedy_ids: number[];
  decoded_text: string;
  prompt_logits_first16?: number[][];
}

export function storiesGolden(): StoriesCase[] {
  return JSON.parse(readFileSync(`${modelDir('stories260k')}/golden.json`, 'utf8')).cases;
}

/** tri-tiny-chat's goldens: chat cases only (messages, prompt_ids, greedy_ids, decoded_text, min_gap). */
export type TriTinyChatCase = Omit<TriTinyCase, 'prompt' | 'messages'> & { messages: { role: string; content: string }[]; min_gap: number };

export function triTinyChatGolden(): TriTinyChatCase[] {
  return JSON.parse(readFileSync(`${modelDir('tri-tiny-chat')}/golden.json`, 'utf8')).prompts;
}

export function triTinyGolden(): TriTinyCase[] {
  return JSON.parse(readFileSync(`${modelDir('tri-tiny')}/golden.json`, 'utf8')).prompts;
}
