// Document masks (DESIGN.md §1): a sequence packs documents; each document may attend to itself
// (causally) and to the earlier documents in its visibility set. Policies build the sets:
//   causal   — every document sees every earlier one: one plain prompt;
//   document — each document sees only itself: independent prompts packed into one pass;
//   xlda     — documents see earlier documents of a different language (Cross-lingual Document Attention);
//   groups   — documents see earlier documents of the same group;
//   visible  — explicit lists of earlier documents, per document.
import { InvalidRequestError } from '../errors.ts';

/** At most this many documents per sequence: visibility is a 32-bit mask on the GPU. */
export const MAX_DOCUMENTS = 32;

export type AttentionPolicy = 'causal' | 'document' | 'xlda' | { groups: readonly number[] } | { visible: readonly (readonly number[])[] };

export interface DocumentInput {
  /** Token count of the document. */
  length: number;
  /** Language tag (e.g. 'en', 'ko'); needed by the xlda policy. */
  language?: string;
}

/** One document of a sequence: positions [start, end) and the mask of earlier documents it sees. */
export interface DocumentSpan {
  start: number;
  end: number;
  visibleMask: number;
}

export function documentSpans(documents: readonly DocumentInput[], policy: AttentionPolicy): DocumentSpan[] {
  if (documents.length === 0) throw new InvalidRequestError('a packed sequence needs at least one document');
  if (documents.length > MAX_DOCUMENTS) throw new InvalidRequestError(`at most ${MAX_DOCUMENTS} documents per sequence (got ${documents.length})`);
  if (typeof policy === 'object' && 'visible' in policy && policy.visible.length > documents.length) {
    throw new InvalidRequestError(`visible has lists for ${policy.visible.length} documents but there are ${documents.length}`);
  }
  const earlier = (d: number, sees: (e: number) => boolean) => {
    let mask = 0;
    for (let e = 0; e < d; e++) if (sees(e)) mask |= 1 << e;
    return mask >>> 0;
  };
  const masks = documents.map((document, d) => {
    if (policy === 'causal') return earlier(d, () => true);
    if (policy === 'document') return 0;
    if (policy === 'xlda') {
      if (document.language === undefined) throw new InvalidRequestError(`document ${d} has no language, which the xlda policy needs`);
      return earlier(d, (e) => documents[e]!.language !== document.language);
    }
    if ('groups' in policy) {
      if (policy.groups.length !== documents.length) throw new InvalidRequestError(`groups names ${policy.groups.length} documents but there are ${documents.length}`);
      return earlier(d, (e) => policy.groups[e] === policy.groups[d]);
    }
    const list = policy.visible[d] ?? [];
    for (const e of list) {
      if (!Number.isInteger(e) || e < 0 || e >= d) {
        throw new InvalidRequestError(`document ${d} lists document ${e} as visible, but only earlier documents 0..${d - 1} exist`);
      }
    }
    return earlier(d, (e) => list.includes(e));
  });
  let start = 0;
  return documents.map((document, d) => {
    if (!Number.isInteger(document.length) || document.length < 1) throw new InvalidRequestError(`document ${d} is empty`);
    const span = { start, end: start + document.length, visibleMask: masks[d]! };
    start = span.end;
    return span;
  });
}

/** The document holding `position`. */
export function documentAt(spans: readonly DocumentSpan[], position: number): number {
  const index = spans.findIndex((span) => position >= span.start && position < span.end);
  if (index < 0) throw new RangeError(`position ${position} is outside every document`);
  return index;
}

/** Whether the token at `query` may attend to the token at `key` (both positions in the sequence). */
export function attentionAllowed(spans: readonly DocumentSpan[], query: number, key: number): boolean {
  if (key > query) return false;
  const d = documentAt(spans, query);
  const e = documentAt(spans, key);
  return e === d || ((spans[d]!.visibleMask >>> e) & 1) === 1;
}
