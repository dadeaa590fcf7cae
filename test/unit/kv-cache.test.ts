// The paged KV cache's bookkeeping, without a GPU: allocation, exhaustion, reuse, prefix sharing across
// sequences and turns, copy-on-write after a fork, eviction of cached pages, and no leaks.
import { describe, expect, it } from 'vitest';
import { KvCacheFullError } from '../../src/errors.ts';
import { KV_PAGE_TOKENS, PagedKvCache } from '../../src/kv/paged-cache.ts';

const range = (start: number, count: number) => Array.from({ length: count }, (_, i) => start + i);
/** append() and a completed forward over the new tokens (commit). */
function appendComputed(cache: PagedKvCache, id: number, tokens: readonly number[]) {
  const result = cache.append(id, tokens);
  cache.commit(id, cache.sequence(id).tokens.length);
  return result;
}

describe('PagedKvCache', () => {
  it('allocates pages as a sequence grows, one per 16 tokens', () => {
    const cache = new PagedKvCache(8);
    const { sequence, cachedTokens } = cache.createSequence(range(0, 20));
    expect(cachedTokens).toBe(0);
    appendComputed(cache, sequence.id, range(0, 20));
    expect(sequence.pages).toHaveLength(2);
    expect(cache.freePageCount).toBe(6);
    appendComputed(cache, sequence.id, range(20, 12)); // 32 tokens: still 2 pages
    expect(sequence.pages).toHaveLength(2);
    appendComputed(cache, sequence.id, [99]);
    expect(sequence.pages).toHaveLength(3);
    expect(new Set(sequence.pages).size).toBe(3);
    cache.finish(sequence.id);
    expect(cache.freePageCount).toBe(8);
    expect(cache.activeSequences).toBe(0);
  });

  it('refuses to grow past the last page with a typed error and changes nothing', () => {
    const cache = new PagedKvCache(2);
    const { sequence } = cache.createSequence([1]);
    appendComputed(cache, sequence.id, range(0, 30));
    expect(() => cache.append(sequence.id, range(0, 3))).toThrow(KvCacheFullError);
    expect(sequence.tokens).toHaveLength(30);
    expect(sequence.pages).toHaveLength(2);
    appendComputed(cache, sequence.id, [7, 8]); // exactly fills the second page
    const other = cache.createSequence([2]).sequence;
    expect(() => cache.append(other.id, [2])).toThrow(KvCacheFullError);
    expect(other.pages).toEqual([]);
  });

  it('shares full pages of an identical prefix between sequences, with ref counts', () => {
    const cache = new PagedKvCache(16);
    const prompt = range(100, 40); // 2 full pages + 8 tokens
    const first = cache.createSequence(prompt);
    appendComputed(cache, first.sequence.id, prompt);
    const second = cache.createSequence([...prompt.slice(0, 35), 1, 2, 3]);
    expect(second.cachedTokens).toBe(32);
    expect(second.sequence.pages).toEqual(first.sequence.pages.slice(0, 2));
    expect(cache.refCount(first.sequence.pages[0]!)).toBe(2);
    appendComputed(cache, second.sequence.id, [...prompt.slice(32, 35), 1, 2, 3]);
    expect(second.sequence.pages[2]).not.toBe(first.sequence.pages[2]); // the partial page is its own
    // A different first page shares nothing.
    expect(cache.createSequence([5, ...prompt.slice(1)]).cachedTokens).toBe(0);
  });

  it('never shares pages of a sequence computed under a document mask', () => {
    const cache = new PagedKvCache(8);
    const prompt = range(0, 40);
    const packed = cache.createSequence(prompt, { shareable: false });
    expect(packed.cachedTokens).toBe(0);
    appendComputed(cache, packed.sequence.id, prompt);
    expect(cache.createSequence(prompt).cachedTokens).toBe(0);
  });

  it('always leaves at least one prompt token to compute', () => {
    const cache = new PagedKvCache(8);
    const prompt = range(0, 32);
    const first = cache.createSequence(prompt);
    appendComputed(cache, first.sequence.id, prompt);
    expect(cache.createSequence(prompt).cachedTokens).toBe(16);
    expect(cache.createSequence([...prompt, 5]).cachedTokens).toBe(32);
  });

  it('keeps finished pages cached for the next turn of a conversation, and saves its prefill', () => {
    const cache = new PagedKvCache(64);
    let history: number[] = [];
    let computed = 0;
    let total = 0;
    for (let turn = 0; turn < 5; turn++) {
      const prompt = [...history, ...range(1000 * turn, 20)]; // the whole conversation so far + a new message
      const { sequence, cachedTokens } = cache.createSequence(prompt);
      appendComputed(cache, sequence.id, prompt.slice(cachedTokens));
      const reply = range(500 + 1000 * turn, 25);
      appendComputed(cache, sequence.id, reply);
      computed += prompt.length - cachedTokens;
      total += prompt.length;
      history = [...prompt, ...reply];
      cache.finish(sequence.id);
    }
    // Turn n re-reads 45·n tokens of history; all but its last partial page come from the cache.
    expect(total).toBe(20 + 65 + 110 + 155 + 200);
    expect(computed).toBeLessThan(total / 3);
    expect(cache.freePageCount).toBe(64);
  });

  it('copies a shared partial page before writing to it (copy-on-write after fork)', () => {
    const cache = new PagedKvCache(8);
    const { sequence } = cache.createSequence(range(0, 20));
    appendComputed(cache, sequence.id, range(0, 20));
    const fork = cache.fork(sequence.id);
    expect(cache.refCount(sequence.pages[1]!)).toBe(2);
    const { copies } = appendComputed(cache, fork.id, [42]);
    expect(copies).toEqual([{ from: sequence.pages[1], to: fork.pages[1] }]);
    expect(fork.pages[0]).toBe(sequence.pages[0]); // the full page stays shared
    expect(cache.refCount(sequence.pages[1]!)).toBe(1);
    expect(appendComputed(cache, sequence.id, [43]).copies).toEqual([]); // no longer shared: written in place
    cache.finish(sequence.id);
    cache.finish(fork.id);
    expect(cache.freePageCount).toBe(8);
  });

  it('evicts cached pages (oldest first) when free pages run out, and forgets pages keyed under them', () => {
    const cache = new PagedKvCache(4);
    const a = cache.createSequence(range(0, 33));
    appendComputed(cache, a.sequence.id, range(0, 33)); // 3 pages: 2 full (registered), 1 partial
    cache.finish(a.sequence.id);
    expect(cache.freePageCount).toBe(4);
    const b = cache.createSequence(range(500, 60));
    appendComputed(cache, b.sequence.id, range(500, 60)); // needs all 4 pages: evicts a's cached pages
    expect(cache.createSequence(range(0, 33)).cachedTokens).toBe(0);
    cache.finish(b.sequence.id);
  });

  it('returns every page after any mix of sequences, forks, truncation and errors', () => {
    const cache = new PagedKvCache(10);
    const ids: number[] = [];
    for (let s = 0; s < 4; s++) {
      const { sequence, cachedTokens } = cache.createSequence(range(0, 10 + s * 9));
      appendComputed(cache, sequence.id, range(cachedTokens, 10 + s * 9 - cachedTokens));
      ids.push(sequence.id);
    }
    ids.push(cache.fork(ids[1]!).id);
    expect(() => cache.append(ids[0]!, range(0, 500))).toThrow(KvCacheFullError);
    cache.truncate(ids[3]!, 5);
    for (const id of ids) cache.finish(id);
    expect(cache.freePageCount).toBe(10);
    expect(KV_PAGE_TOKENS).toBe(16);
  });

  it('shares no page before the forward that computes it has completed (an aborted prefill leaves nothing behind)', () => {
    const cache = new PagedKvCache(8);
    const prompt = range(0, 40);
    const aborted = cache.createSequence(prompt);
    cache.append(aborted.sequence.id, prompt); // reserved, never computed
    expect(cache.createSequence(prompt).cachedTokens).toBe(0);
    cache.finish(aborted.sequence.id);
    expect(cache.createSequence(prompt).cachedTokens, 'after finish, the uncomputed pages are free, not cached').toBe(0);
    const partly = cache.createSequence(prompt);
    cache.append(partly.sequence.id, prompt);
    cache.commit(partly.sequence.id, 20); // the first prefill chunk ran: one full page
    expect(cache.createSequence(prompt).cachedTokens).toBe(16);
  });
});
