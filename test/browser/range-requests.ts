// Records the Range headers of the fetches a page makes while an action runs (the model-file reads).
const realFetch = globalThis.fetch;

export async function rangeRequests(action: () => Promise<void>, urlMatches: (url: string) => boolean = () => true): Promise<string[]> {
  const ranges: string[] = [];
  globalThis.fetch = (input, init) => {
    const range = new Headers(init?.headers).get('range');
    if (range && urlMatches(String(input))) ranges.push(range);
    return realFetch(input, init);
  };
  try {
    await action();
  } finally {
    globalThis.fetch = realFetch;
  }
  return ranges;
}
