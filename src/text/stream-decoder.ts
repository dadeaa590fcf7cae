// Turns a stream of token ids into text deltas that never split a UTF-8 character.
// Byte-level BPE (tri-tiny, Tri-7B) and byte-fallback SentencePiece both produce tokens that hold part
// of a character (a Hangul syllable is 3 bytes, often split over 2 tokens); decoding such a prefix
// yields U+FFFD, so we hold text back until it decodes cleanly. Decoding a short window of recent tokens
// (not the whole sequence) keeps each step O(1), and diffing against the window's own prefix keeps
// decoder side effects (SentencePiece strips one leading space) out of the delta. The window starts with
// the prompt's last tokens, so the first delta is (prompt + token) minus prompt: a continuation that
// starts a new word keeps that word's space.

const REPLACEMENT = '\uFFFD';
/** Prompt tokens kept as context for the first deltas: enough for any tokenizer's boundary effects. */
const CONTEXT_TOKENS = 8;

export interface Decoder {
  decode(ids: readonly number[]): string;
}

export class StreamDecoder {
  private readonly decoder: Decoder;
  private readonly ids: number[] = [];
  /** ids before this index have been emitted and dropped from the window */
  private prefixStart = 0;
  /** ids before this index are emitted; [prefixStart, readStart) is context for the next decode */
  private readStart = 0;

  constructor(decoder: Decoder, promptIds: readonly number[] = []) {
    this.decoder = decoder;
    this.ids.push(...promptIds.slice(-CONTEXT_TOKENS));
    this.readStart = this.ids.length;
  }

  /** Adds one token; returns the text that is now complete (possibly ''). */
  push(id: number): string {
    this.ids.push(id);
    const window = this.ids.slice(this.prefixStart);
    const prefixText = this.decoder.decode(window.slice(0, this.readStart - this.prefixStart));
    const fullText = this.decoder.decode(window);
    if (fullText.length <= prefixText.length || fullText.endsWith(REPLACEMENT)) return '';
    const delta = fullText.slice(prefixText.length);
    this.prefixStart = this.readStart;
    this.readStart = this.ids.length;
    return delta;
  }

  /** Whatever is still held back (an incomplete character at the end is emitted as U+FFFD, as HF does). */
  flush(): string {
    if (this.readStart === this.ids.length) return '';
    const window = this.ids.slice(this.prefixStart);
    const prefixText = this.decoder.decode(window.slice(0, this.readStart - this.prefixStart));
    const fullText = this.decoder.decode(window);
    this.prefixStart = this.readStart = this.ids.length;
    return fullText.slice(prefixText.length);
  }
}
