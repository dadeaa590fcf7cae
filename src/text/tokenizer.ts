// Tokenizer (tokenizer.json through @huggingface/tokenizers) and chat template (@huggingface/jinja).
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelFileMissingError, TokenizerError } from '../errors.ts';
import { type ModelFiles, readJsonIfPresent } from '../model/byte-source.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  content: string;
}

type Json = Record<string, unknown>;

function tokenContent(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as Json).content === 'string') return (value as Json).content as string;
  return undefined;
}

export class TextCodec {
  private readonly tokenizer: Tokenizer;
  private readonly chatTemplate: Template | undefined;
  private readonly config: Json;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  /** Whether encode() prepends BOS (add_bos_token, or a post-processor in tokenizer.json). */
  readonly addsBos: boolean;

  constructor(tokenizerJson: Json, tokenizerConfig: Json) {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new TokenizerError(`tokenizer.json could not be loaded: ${(error as Error).message}`, { cause: error });
    }
    this.config = tokenizerConfig;
    this.bosToken = tokenContent(tokenizerConfig.bos_token);
    this.eosToken = tokenContent(tokenizerConfig.eos_token);
    this.addsBos = this.tokenizer.encode('', { add_special_tokens: true }).ids.length > 0;
    const template = tokenizerConfig.chat_template;
    const source = typeof template === 'string'
      ? template
      : Array.isArray(template)
        ? (template.find((t: Json) => t.name === 'default')?.template as string | undefined)
        : undefined;
    if (source !== undefined) {
      try {
        this.chatTemplate = new Template(source);
      } catch (error) {
        throw new TokenizerError(`tokenizer_config.json: chat_template does not parse: ${(error as Error).message}`, { cause: error });
      }
    }
  }

  static async load(files: ModelFiles, signal?: AbortSignal): Promise<TextCodec> {
    const tokenizerJson = (await readJsonIfPresent(files, 'tokenizer.json', signal)) as Json | undefined;
    if (!tokenizerJson) {
      throw new ModelFileMissingError('tokenizer.json', `${files.location} (only tokenizer.json tokenizers are supported)`);
    }
    const tokenizerConfig = ((await readJsonIfPresent(files, 'tokenizer_config.json', signal)) ?? {}) as Json;
    return new TextCodec(tokenizerJson, tokenizerConfig);
  }

  /** Encodes plain text; special tokens (BOS) are added as the tokenizer's config says. */
  encode(text: string, { addSpecialTokens = true } = {}): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: addSpecialTokens }).ids;
  }

  decode(ids: readonly number[], { skipSpecialTokens = true } = {}): string {
    if (ids.length === 0) return ''; // the library refuses an empty list
    return this.tokenizer.decode([...ids], { skip_special_tokens: skipSpecialTokens });
  }

  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }

  get hasChatTemplate(): boolean {
    return this.chatTemplate !== undefined;
  }

  /** Renders the chat template (HF `apply_chat_template`) and encodes it without adding BOS again. */
  applyChatTemplate(messages: readonly ChatMessage[], { addGenerationPrompt = true } = {}): number[] {
    if (!this.chatTemplate) throw new TokenizerError('tokenizer_config.json has no chat_template; use a plain prompt');
    const text = this.chatTemplate.render({
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
      ...Object.fromEntries(Object.entries(this.config).filter(([key]) => key.endsWith('_token') && typeof this.config[key] === 'string')),
    });
    // Templates usually write BOS themselves, so HF encodes the result without special tokens.
    return this.encode(text, { addSpecialTokens: false });
  }
}
