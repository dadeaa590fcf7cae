// The paged KV cache's bookkeeping, in plain TypeScript (the GPU holds the pages; this decides which).
// Positions of a sequence live in fixed-size pages named by its page table. Full pages are immutable and
// are registered under (parent page, their tokens), so a later sequence whose token prefix matches
// shares them (ref-counted) instead of recomputing them: a follow-up chat turn prefills only its new
// tokens. Pages no sequence holds but that are still registered stay cached until their space is needed
// (least recently released first). A forked sequence shares even its partial last page; the first write to a
// shared page copies it (copy-on-write), and the GPU executor performs the copies this code returns.
import { KvCacheFullError } from '../errors.ts';

/** Tokens per KV page. 16 keeps the waste of a partial last page small and tiles attention evenly. */
export const KV_PAGE_TOKENS = 16;

/** A copy of one page's K and V rows (all layers) that the GPU must perform before the next forward. */
export interface KvPageCopy {
  from: number;
  to: number;
}

export interface KvSequence {
  readonly id: number;
  /**
   * Whether its full pages may be shared with later sequences. Only a plain causal prompt's pages are:
   * a page computed under a document mask holds different K/V than the same tokens seen causally.
   */
  readonly shareable: boolean;
  /** Page ids, one per KV_PAGE_TOKENS positions. */
  readonly pages: number[];
  /** Token ids whose K/V are in the cache (or are being written by the current forward). */
  readonly tokens: number[];
  /** Leading tokens whose K/V a completed forward has written (commit()); only their pages are shared. */
  computed: number;
}

interface PageState {
  refs: number;
  /** Registry key while the page is full and shareable. */
  key: string | undefined;
  parent: number; // -1 for a first page
  children: Set<number>;
}

export class PagedKvCache {
  readonly pageCount: number;
  private readonly pageStates: PageState[];
  private readonly free: number[] = [];
  /** Registered pages nobody holds, oldest first: reusable, but evicted only when space runs out. */
  private readonly cached = new Set<number>();
  private readonly registry = new Map<string, number>();
  private readonly sequences = new Map<number, KvSequence>();
  private nextId = 1;

  constructor(pageCount: number) {
    if (!Number.isInteger(pageCount) || pageCount < 1) throw new RangeError(`pageCount must be a positive integer (got ${pageCount})`);
    this.pageCount = pageCount;
    this.pageStates = Array.from({ length: pageCount }, () => ({ refs: 0, key: undefined, parent: -1, children: new Set<number>() }));
    for (let page = pageCount - 1; page >= 0; page--) this.free.push(page);
  }

  /** Pages that a new sequence could take now (free or merely cached). */
  get freePageCount(): number {
    return this.free.length + this.cached.size;
  }

  get activeSequences(): number {
    return this.sequences.size;
  }

  refCount(page: number): number {
    return this.pageStates[page]!.refs;
  }

  sequence(id: number): KvSequence {
    const sequence = this.sequences.get(id);
    if (!sequence) throw new RangeError(`no KV sequence ${id} (finished or never created)`);
    return sequence;
  }

  /**
   * Starts a sequence for `promptTokens`, sharing the longest run of cached full pages that hold the same
   * token prefix. Returns how many leading tokens are already cached (their forward can be skipped).
   * At least one token is always left to compute, so the caller gets logits for the last prompt token.
   */
  createSequence(promptTokens: readonly number[], options: { shareable?: boolean } = {}): { sequence: KvSequence; cachedTokens: number } {
    const shareable = options.shareable ?? true;
    const sequence: KvSequence = { id: this.nextId++, shareable, pages: [], tokens: [], computed: 0 };
    let parent = -1;
    while (shareable && (sequence.pages.length + 1) * KV_PAGE_TOKENS < promptTokens.length) {
      const start = sequence.pages.length * KV_PAGE_TOKENS;
      const page = this.registry.get(pageKey(parent, promptTokens.slice(start, start + KV_PAGE_TOKENS)));
      if (page === undefined) break;
      this.retain(page);
      sequence.pages.push(page);
      sequence.tokens.push(...promptTokens.slice(start, start + KV_PAGE_TOKENS));
      parent = page;
    }
    sequence.computed = sequence.tokens.length;
    this.sequences.set(sequence.id, sequence);
    return { sequence, cachedTokens: sequence.tokens.length };
  }

  /** A new sequence sharing every page of `source` (e.g. several samples of one prompt). */
  fork(sourceId: number): KvSequence {
    const source = this.sequence(sourceId);
    for (const page of source.pages) this.retain(page);
    const sequence: KvSequence = { id: this.nextId++, shareable: source.shareable, pages: [...source.pages], tokens: [...source.tokens], computed: source.computed };
    this.sequences.set(sequence.id, sequence);
    return sequence;
  }

  /**
   * Reserves positions for `tokens` at the end of a sequence: allocates pages as needed and copies a
   * shared partial page before it is written. Throws KvCacheFullError (changing nothing) if pages run out.
   * Nothing is shared until commit() says the forward that writes them has completed.
   */
  append(id: number, tokens: readonly number[]): { copies: KvPageCopy[] } {
    const sequence = this.sequence(id);
    const length = sequence.tokens.length;
    const partialPage = length % KV_PAGE_TOKENS === 0 ? undefined : sequence.pages.at(-1)!;
    const copyNeeded = partialPage !== undefined && this.pageStates[partialPage]!.refs > 1;
    const newPages = Math.ceil((length + tokens.length) / KV_PAGE_TOKENS) - sequence.pages.length;
    const needed = newPages + (copyNeeded ? 1 : 0);
    if (needed > this.freePageCount) throw new KvCacheFullError(needed, this.freePageCount);

    const copies: KvPageCopy[] = [];
    if (copyNeeded) {
      const copy = this.take();
      this.release(partialPage);
      sequence.pages[sequence.pages.length - 1] = copy;
      copies.push({ from: partialPage, to: copy });
    }
    for (let i = 0; i < newPages; i++) sequence.pages.push(this.take());
    sequence.tokens.push(...tokens);
    return { copies };
  }

  /**
   * The first `length` tokens' K/V are written (their forward completed): full pages among them are
   * registered for sharing. Pages of a prompt aborted or failed before its prefill ran hold no K/V and
   * must never be shared, so registration waits for this.
   */
  commit(id: number, length: number): void {
    const sequence = this.sequence(id);
    if (length > sequence.tokens.length) throw new RangeError(`commit of ${length} tokens, but the sequence holds ${sequence.tokens.length}`);
    if (length <= sequence.computed) return;
    const previous = sequence.computed;
    sequence.computed = length;
    if (sequence.shareable) this.registerFullPages(sequence, previous);
  }

  /**
   * Names the token at `position`, reserved by append() before it was known (a decode step queued before
   * the previous step's drawn id was read back). Only positions no commit() has covered may change.
   */
  setToken(id: number, position: number, token: number): void {
    const sequence = this.sequence(id);
    if (position < sequence.computed || position >= sequence.tokens.length) throw new RangeError(`position ${position} is not a reserved, uncommitted position of sequence ${id}`);
    sequence.tokens[position] = token;
  }

  /** Drops the last `count` tokens (e.g. a reserved position that was never computed). */
  truncate(id: number, length: number): void {
    const sequence = this.sequence(id);
    if (length > sequence.tokens.length) throw new RangeError('truncate cannot grow a sequence');
    sequence.tokens.length = length;
    sequence.computed = Math.min(sequence.computed, length);
    const keep = Math.ceil(length / KV_PAGE_TOKENS);
    for (const page of sequence.pages.splice(keep)) this.release(page);
  }

  /** Ends a sequence (finished or aborted): its pages return to the pool; full ones stay cached for reuse. */
  finish(id: number): void {
    const sequence = this.sequence(id);
    for (const page of sequence.pages) this.release(page);
    this.sequences.delete(id);
  }

  private registerFullPages(sequence: KvSequence, previousLength: number): void {
    const firstNewFull = Math.floor(previousLength / KV_PAGE_TOKENS);
    const full = Math.floor(sequence.computed / KV_PAGE_TOKENS);
    for (let index = firstNewFull; index < full; index++) {
      const page = sequence.pages[index]!;
      const state = this.pageStates[page]!;
      if (state.key !== undefined) continue;
      const parent = index === 0 ? -1 : sequence.pages[index - 1]!;
      const key = pageKey(parent, sequence.tokens.slice(index * KV_PAGE_TOKENS, (index + 1) * KV_PAGE_TOKENS));
      if (this.registry.has(key)) continue; // an identical page computed by another sequence already stands for it
      state.key = key;
      state.parent = parent;
      this.registry.set(key, page);
      if (parent >= 0) this.pageStates[parent]!.children.add(page);
    }
  }

  private retain(page: number): void {
    const state = this.pageStates[page]!;
    if (state.refs === 0) this.cached.delete(page);
    state.refs++;
  }

  private release(page: number): void {
    const state = this.pageStates[page]!;
    if (state.refs <= 0) throw new Error(`KV page ${page} released more often than retained`);
    if (--state.refs > 0) return;
    if (state.key !== undefined) this.cached.add(page);
    else this.free.push(page);
  }

  /** A page for writing: a free one, else the one released longest ago (evicted with its descendants' keys). */
  private take(): number {
    let page = this.free.pop();
    if (page === undefined) {
      page = this.cached.values().next().value as number;
      this.cached.delete(page);
      this.unregister(page);
    }
    this.pageStates[page]!.refs = 1;
    return page;
  }

  /** Forgets a page's registry key and those of pages registered under it (their key names its id). */
  private unregister(page: number): void {
    const state = this.pageStates[page]!;
    if (state.key !== undefined) this.registry.delete(state.key);
    if (state.parent >= 0) this.pageStates[state.parent]!.children.delete(page);
    state.key = undefined;
    state.parent = -1;
    for (const child of [...state.children]) {
      const childState = this.pageStates[child]!;
      this.unregister(child);
      if (childState.refs === 0 && this.cached.delete(child)) this.free.push(child);
    }
    state.children.clear();
  }
}

/** Registry key of a full page: its parent page (which stands for the whole earlier prefix) and its tokens. */
function pageKey(parent: number, tokens: readonly number[]): string {
  return `${parent}:${tokens.join(',')}`;
}
