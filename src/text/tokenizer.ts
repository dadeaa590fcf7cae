// Tokenizer (tokenizer.json through @huggingface/tokenizers) and chat template (@huggingface/jinja).
import { Template } from '@huggingface/jinja';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelFileMissingError, TokenizerError } from '../errors.ts';
import { type ModelFiles, readJsonIfPresent, readTextIfPresent } from '../model/byte-source.ts';
import { renderBounded } from './template-budget.ts';

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | (string & {});
  /** Text, or parts (a vision model's template renders an image part as its `<image>` token). */
  content: string | readonly ChatContentPart[];
}

/** A part of a message as the chat template sees it (the engine strips the pixels off image parts first). */
export type ChatContentPart = { type: 'text'; text: string } | { type: 'image' };

/** Every text a person wrote in the messages, in order (string contents and text parts). */
function contentTexts(messages: readonly ChatMessage[]): string[] {
  return messages.flatMap((m) => (typeof m.content === 'string' ? [m.content] : m.content.flatMap((part) => (part.type === 'text' ? [part.text] : []))));
}

type Json = Record<string, unknown>;
/** More text than any context window holds (a runaway template loop): refused, not tokenized. */
const MAX_RENDERED_CHARS = 4 * 2 ** 20;
const isObject = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

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
  /** The text of every special added token (`<|im_end|>`, `<s>`, ...), longest first. */
  private readonly specialTokens: string[];

  constructor(tokenizerJson: Json, tokenizerConfig: Json) {
    try {
      this.tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (error) {
      throw new TokenizerError(`tokenizer.json could not be loaded: ${(error as Error).message}`, { cause: error });
    }
    this.config = tokenizerConfig;
    const added = Array.isArray(tokenizerJson.added_tokens) ? (tokenizerJson.added_tokens as Json[]) : [];
    this.specialTokens = added.filter((token) => token.special === true && typeof token.content === 'string' && token.content.length > 1)
      .map((token) => token.content as string).sort((a, b) => b.length - a.length);
    this.bosToken = tokenContent(tokenizerConfig.bos_token);
    this.eosToken = tokenContent(tokenizerConfig.eos_token);
    this.addsBos = this.tokenizer.encode('', { add_special_tokens: true }).ids.length > 0;
    const template = tokenizerConfig.chat_template;
    // A string, or HF's list of named templates ({ name, template }), of which we use "default".
    const named = Array.isArray(template) ? template.find((t: unknown) => isObject(t) && t.name === 'default') : undefined;
    const source = typeof template === 'string' ? template : named?.template;
    const malformedList = Array.isArray(template) && !template.every((t: unknown) => isObject(t) && typeof t.template === 'string');
    if ((template !== undefined && template !== null && !Array.isArray(template) && typeof template !== 'string') || malformedList) {
      throw new TokenizerError('tokenizer_config.json: chat_template must be a string or a list of { name, template } entries');
    }
    if (typeof source === 'string') {
      try {
        this.chatTemplate = new Template(source);
      } catch (error) {
        throw new TokenizerError(`tokenizer_config.json: chat_template does not parse: ${(error as Error).message}`, { cause: error });
      }
    }
  }

  static async load(files: ModelFiles, signal?: AbortSignal): Promise<TextCodec> {
    const tokenizerJson = await readJsonIfPresent(files, 'tokenizer.json', signal);
    if (tokenizerJson === undefined) {
      throw new ModelFileMissingError('tokenizer.json', `${files.location} (only tokenizer.json tokenizers are supported)`);
    }
    if (!isObject(tokenizerJson)) throw new TokenizerError('tokenizer.json is not a JSON object');
    const tokenizerConfig = (await readJsonIfPresent(files, 'tokenizer_config.json', signal)) ?? {};
    if (!isObject(tokenizerConfig)) throw new TokenizerError('tokenizer_config.json is not a JSON object');
    // transformers 5 saves the template beside the config (chat_template.jinja); hub repos use either layout.
    if (tokenizerConfig.chat_template === undefined || tokenizerConfig.chat_template === null) {
      const template = await readTextIfPresent(files, 'chat_template.jinja', signal);
      if (template !== undefined) return new TextCodec(tokenizerJson, { ...tokenizerConfig, chat_template: template });
    }
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

  /**
   * Encodes text that came from a user (or the model) as plain text: a special token's text inside it
   * (`<|im_end|><|im_start|>system`) stays text, never a control token. Each occurrence is encoded in
   * two pieces, so the tokenizer cannot match it as the special token.
   */
  encodeLiteral(text: string): number[] {
    const ids: number[] = [];
    let rest = text;
    for (;;) {
      const found = this.findSpecial(rest);
      if (!found) break;
      const { at, token } = found;
      ids.push(...this.encodePiece(rest.slice(0, at)), ...this.encodePiece(token.slice(0, -1)), ...this.encodePiece(token.slice(-1)));
      rest = rest.slice(at + token.length);
    }
    ids.push(...this.encodePiece(rest));
    return ids;
  }

  private encodePiece(text: string): number[] {
    return text ? this.encode(text, { addSpecialTokens: false }) : [];
  }

  private findSpecial(text: string): { at: number; token: string } | undefined {
    let best: { at: number; token: string } | undefined;
    for (const token of this.specialTokens) {
      const at = text.indexOf(token);
      if (at >= 0 && (!best || at < best.at)) best = { at, token };
    }
    return best;
  }

  /**
   * Renders the chat template (HF `apply_chat_template`) and encodes it without adding BOS again. Only
   * the template's own markup yields special tokens: message contents are encoded as literal text
   * (encodeLiteral), so a user who types `<|im_end|><|im_start|>system` cannot forge a turn.
   */
  applyChatTemplate(messages: readonly ChatMessage[], { addGenerationPrompt = true } = {}): number[] {
    const text = this.renderChat(messages, addGenerationPrompt);
    const texts = contentTexts(messages);
    // Templates usually write BOS themselves, so HF encodes the result without special tokens.
    if (!texts.some((content) => this.findSpecial(content))) return this.encode(text, { addSpecialTokens: false });
    // Some content holds a special token's text: learn where the template puts each content by rendering
    // it with a unique stand-in per text, then encode the markup and the contents apart.
    let next = 0;
    const standIn = () => `\uE000${next++}\uE001`;
    const withStandIns = messages.map((message) => ({
      ...message,
      content: typeof message.content === 'string' ? standIn() : message.content.map((part) => (part.type === 'text' ? { ...part, text: standIn() } : part)),
    }));
    const markup = this.renderChat(withStandIns, addGenerationPrompt).split(/\uE000\d+\uE001/);
    for (const contents of [texts, texts.map((content) => content.trim())]) {
      // The template must place each content once, in order, unchanged (or trimmed, as some templates do).
      if (markup.length !== texts.length + 1 || markup.map((piece, i) => piece + (contents[i] ?? '')).join('') !== text) continue;
      return markup.flatMap((piece, i) => [...this.encode(piece, { addSpecialTokens: false }), ...(i < contents.length ? this.encodeLiteral(contents[i]!) : [])]);
    }
    throw new TokenizerError('a message holds special-token text and the chat template changes message contents, so it cannot be encoded safely; remove the special tokens from it');
  }

  private renderChat(messages: readonly ChatMessage[], addGenerationPrompt: boolean): string {
    if (!this.chatTemplate) throw new TokenizerError('tokenizer_config.json has no chat_template; use a plain prompt');
    let text: string;
    try {
      text = renderBounded(this.chatTemplate, {
      messages,
      add_generation_prompt: addGenerationPrompt,
      bos_token: this.bosToken ?? '',
      eos_token: this.eosToken ?? '',
      ...Object.fromEntries(Object.entries(this.config).filter(([key]) => key.endsWith('_token') && typeof this.config[key] === 'string')),
      });
    } catch (error) {
      // The template's own errors (raise_exception: "roles must alternate", ...) and broken templates.
      throw new TokenizerError(`the chat template failed: ${(error as Error).message}`, { cause: error });
    }
    if (text.length > MAX_RENDERED_CHARS) throw new TokenizerError(`the chat template rendered ${text.length} characters, more than any context holds`);
    return text;
  }
}
