// Random access to model files without loading them whole: every reader asks for a byte range.
import { InvalidRequestError, ModelFileMissingError, ModelFileReadError } from '../errors.ts';

export interface ByteSource {
  /** File name used in error messages. */
  readonly name: string;
  readonly size: number;
  /** A version of the content when the source knows one (HTTP: the ETag); caches key on it. */
  readonly version?: string;
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
}

/** A folder of model files: a directory, a URL prefix, or files the user picked. */
export interface ModelFiles {
  /** Where the files come from, for error messages. */
  readonly location: string;
  /** Opens a file; throws ModelFileMissingError when it is not there. */
  open(fileName: string, signal?: AbortSignal): Promise<ByteSource>;
}

export async function readText(files: ModelFiles, fileName: string, signal?: AbortSignal): Promise<string> {
  const source = await files.open(fileName, signal);
  return new TextDecoder().decode(await source.read(0, source.size, signal));
}

export async function readJson(files: ModelFiles, fileName: string, signal?: AbortSignal): Promise<unknown> {
  const text = await readText(files, fileName, signal);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new ModelFileReadError(fileName, `not valid JSON (${(error as Error).message})`);
  }
}

/** The parsed file, or undefined when it does not exist (one open, not an existence check plus a read). */
export async function readJsonIfPresent(files: ModelFiles, fileName: string, signal?: AbortSignal): Promise<unknown> {
  try {
    return await readJson(files, fileName, signal);
  } catch (error) {
    if (error instanceof ModelFileMissingError) return undefined;
    throw error;
  }
}

function checkRange(source: ByteSource, offset: number, length: number): void {
  if (offset < 0 || length < 0 || offset + length > source.size) {
    throw new ModelFileReadError(
      source.name,
      `read of ${length} bytes at ${offset} is outside the file (${source.size} bytes)`,
    );
  }
}

/** A Blob or File (drag-and-drop, <input type=file>, OPFS). */
export class BlobSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly blob: Blob;
  constructor(blob: Blob, name: string) {
    this.blob = blob;
    this.name = name;
    this.size = blob.size;
  }
  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    checkRange(this, offset, length);
    const bytes = new Uint8Array(await this.blob.slice(offset, offset + length).arrayBuffer());
    signal?.throwIfAborted();
    return bytes;
  }
}

/** Files picked by the user, keyed by their base name. */
export class BlobModelFiles implements ModelFiles {
  readonly location: string;
  private readonly byName: Map<string, Blob>;
  constructor(files: Iterable<File> | Map<string, Blob>, location = 'the selected files') {
    this.location = location;
    this.byName = files instanceof Map ? files : new Map([...files].map((file) => [file.name, file]));
  }
  async open(fileName: string, signal?: AbortSignal): Promise<ByteSource> {
    signal?.throwIfAborted();
    const blob = this.byName.get(fileName);
    if (!blob) throw new ModelFileMissingError(fileName, this.location);
    return new BlobSource(blob, fileName);
  }
}

/** How HttpRangeSource rides out a flaky connection. */
export interface RetryPolicy {
  /** Further attempts after a failed request or a body cut short. */
  retries: number;
  /** Wait before the first retry; doubled for each one after. */
  initialDelayMs: number;
}

const DEFAULT_RETRY: RetryPolicy = { retries: 5, initialDelayMs: 500 };

/** A response or network failure worth trying again (the server or the connection, not the request). */
class TransientReadError extends Error {}

/**
 * A file over HTTP(S), read with Range requests. The size comes from a HEAD request; a server that
 * ignores Range (answers 200 with the whole body) is refused rather than silently downloading gigabytes.
 * Interrupted downloads resume: a dropped connection, a body cut short, HTTP 408/429/5xx are retried
 * with backoff, asking only for the bytes still missing, so a flaky network costs seconds, not the model.
 */
export class HttpRangeSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  readonly url: string;
  /** The server's ETag, when it sends one. */
  readonly version: string | undefined;
  private readonly retry: RetryPolicy;
  private constructor(url: string, name: string, size: number, version: string | undefined, retry: RetryPolicy) {
    this.url = url;
    this.name = name;
    this.size = size;
    this.version = version;
    this.retry = retry;
  }

  static async open(url: string, name: string, signal?: AbortSignal, retry: RetryPolicy = DEFAULT_RETRY): Promise<HttpRangeSource> {
    let response: Response;
    try {
      response = await fetch(url, { method: 'HEAD', signal });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ModelFileReadError(name, `could not reach ${url}`, { cause: error });
    }
    if (response.status === 404) throw new ModelFileMissingError(name, url);
    if (!response.ok) throw new ModelFileReadError(name, `HEAD ${url} answered HTTP ${response.status}`);
    // Single-page-app hosts and dev servers (Vite among them) answer unknown paths with their index page
    // and status 200: a web page where a model file should be means the file is not there.
    if (!name.endsWith('.html') && /^text\/html\b/.test(response.headers.get('content-type') ?? '')) {
      throw new ModelFileMissingError(name, `${url} (the server answered with a web page)`);
    }
    const length = response.headers.get('content-length');
    const size = length === null ? NaN : Number(length);
    if (!Number.isSafeInteger(size) || size < 0) {
      throw new ModelFileReadError(name, `HEAD ${url} gave no usable Content-Length`);
    }
    return new HttpRangeSource(url, name, size, response.headers.get('etag') ?? undefined, retry);
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(this, offset, length);
    const out = new Uint8Array(length);
    if (length === 0) return out;
    const progress = { received: 0 };
    for (let attempt = 0; ; attempt++) {
      try {
        await this.readInto(out, offset, progress, signal);
        return out;
      } catch (error) {
        if (signal?.aborted) throw signal.reason ?? error;
        if (!(error instanceof TransientReadError)) throw error;
        if (attempt >= this.retry.retries) {
          throw new ModelFileReadError(this.name, `${error.message}; gave up after ${attempt + 1} attempts (${progress.received} of ${length} bytes at ${offset} read)`, { cause: error });
        }
        await sleep(this.retry.initialDelayMs * 2 ** attempt, signal);
      }
    }
  }

  /** One request for the bytes still missing, filling `out` from progress.received on. */
  private async readInto(out: Uint8Array, offset: number, progress: { received: number }, signal: AbortSignal | undefined): Promise<void> {
    const start = offset + progress.received;
    let response: Response;
    try {
      response = await fetch(this.url, { headers: { Range: `bytes=${start}-${offset + out.length - 1}` }, signal });
    } catch (error) {
      throw new TransientReadError(`could not reach ${this.url}: ${(error as Error).message}`);
    }
    if (response.status === 200 && !(start === 0 && out.length === this.size)) {
      await response.body?.cancel();
      throw new ModelFileReadError(this.name, `server ignored the Range header for ${this.url}`);
    }
    if (response.status === 408 || response.status === 429 || response.status >= 500) {
      await response.body?.cancel();
      throw new TransientReadError(`GET ${this.url} answered HTTP ${response.status}`);
    }
    if (response.status !== 206 && response.status !== 200) {
      throw new ModelFileReadError(this.name, `GET ${this.url} answered HTTP ${response.status}`);
    }
    if (!response.body) throw new ModelFileReadError(this.name, `GET ${this.url} had no body`);
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (progress.received + value.length > out.length) {
          throw new ModelFileReadError(this.name, `asked for ${out.length} bytes at ${offset}, got more`);
        }
        out.set(value, progress.received);
        progress.received += value.length;
      }
    } catch (error) {
      if (error instanceof ModelFileReadError || signal?.aborted) throw error;
      throw new TransientReadError(`the connection dropped after ${progress.received} of ${out.length} bytes: ${(error as Error).message}`);
    }
    if (progress.received < out.length) throw new TransientReadError(`the body ended after ${progress.received} of ${out.length} bytes`);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

/** A model folder under a URL prefix (a static server, or the Hugging Face hub's resolve URLs). */
export class HttpModelFiles implements ModelFiles {
  readonly location: string;
  private readonly retry: RetryPolicy;
  /** `baseUrl` may be relative ('/models/tri-tiny/'): it resolves against the page (or worker) address. */
  constructor(baseUrl: string, options: { retry?: RetryPolicy } = {}) {
    this.location = resolveFolderUrl(baseUrl);
    this.retry = options.retry ?? DEFAULT_RETRY;
  }
  open(fileName: string, signal?: AbortSignal): Promise<ByteSource> {
    return HttpRangeSource.open(new URL(fileName, this.location).href, fileName, signal, this.retry);
  }
}

/** An absolute folder URL ending in '/', or InvalidRequestError (a relative URL with no page to resolve against). */
export function resolveFolderUrl(url: string): string {
  const folder = url.endsWith('/') ? url : `${url}/`;
  const base = (globalThis as { location?: { href: string } }).location?.href;
  let resolved: URL;
  try {
    resolved = new URL(folder, base);
  } catch {
    throw new InvalidRequestError(
      base === undefined
        ? `the model URL "${url}" is relative and there is no page address to resolve it against; give a full http(s) URL (in Node, a folder on disk is new NodeModelFiles(path))`
        : `"${url}" is not a valid model URL`,
    );
  }
  if (resolved.protocol !== 'http:' && resolved.protocol !== 'https:' && resolved.protocol !== 'blob:') {
    throw new InvalidRequestError(`the model URL "${url}" must be http(s), not ${resolved.protocol}`);
  }
  return resolved.href;
}
