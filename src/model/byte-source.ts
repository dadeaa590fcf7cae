// Random access to model files without loading them whole: every reader asks for a byte range.
import { InvalidRequestError, ModelFileMissingError, ModelFileReadError } from '../errors.ts';

export interface ByteSource {
  /** File name used in error messages. */
  readonly name: string;
  readonly size: number;
  /** A version of the content when the source knows one (HTTP: the ETag); caches key on it. */
  readonly version?: string;
  read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array>;
  /** Forgets any locally stored copy (a cache), so the next reads fetch the source again. */
  invalidate?(): Promise<void>;
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
export function readJsonIfPresent(files: ModelFiles, fileName: string, signal?: AbortSignal): Promise<unknown> {
  return ifPresent(readJson(files, fileName, signal));
}

/** The file's text, or undefined when it does not exist. */
export function readTextIfPresent(files: ModelFiles, fileName: string, signal?: AbortSignal): Promise<string | undefined> {
  return ifPresent(readText(files, fileName, signal));
}

async function ifPresent<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
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
  /**
   * A request that delivers no byte for this long (no headers, or a body that stops) is dropped and
   * retried like a cut connection. Without it a stalled server hangs a load for minutes, or forever.
   */
  stallTimeoutMs: number;
}

const DEFAULT_RETRY: RetryPolicy = { retries: 5, initialDelayMs: 500, stallTimeoutMs: 30_000 };

/**
 * A server that ignores Range (python -m http.server, some static hosts) sends the whole file for any
 * read. Files up to this size are then kept whole in memory for the reads that follow (a small model
 * still loads); a larger one is refused with a message saying what the host needs.
 */
export const WHOLE_FILE_FALLBACK_BYTES = 128 * 2 ** 20;

/** A response or network failure worth trying again (the server or the connection, not the request). */
class TransientReadError extends Error {}

/**
 * A fetch whose signal also fires when no progress is reported for `timeoutMs`: call `progress()` on
 * each chunk; `stalled` tells the two aborts apart.
 */
class StallWatch {
  readonly signal: AbortSignal;
  stalled = false;
  private readonly controller = new AbortController();
  private readonly timeoutMs: number;
  private timer: ReturnType<typeof setTimeout> | undefined;
  constructor(timeoutMs: number, outer: AbortSignal | undefined) {
    this.timeoutMs = timeoutMs;
    this.signal = outer ? AbortSignal.any([outer, this.controller.signal]) : this.controller.signal;
    this.progress();
  }
  progress(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.stalled = true;
      this.controller.abort(new TransientReadError(`no data for ${this.timeoutMs / 1000} s`));
    }, this.timeoutMs);
  }
  stop(): void {
    clearTimeout(this.timer);
  }
}

/** The response's version of the file (ETag, else Last-Modified), to notice a file that changes mid-load. */
function responseVersion(response: Response): string | undefined {
  const etag = response.headers.get('etag')?.replace(/^W\//, '');
  return etag ?? response.headers.get('last-modified') ?? undefined;
}

/**
 * A file over HTTP(S), read with Range requests. The size comes from a HEAD request; a server that
 * ignores Range (answers 200 with the whole body) is read whole once for files up to
 * WHOLE_FILE_FALLBACK_BYTES, and refused for larger ones rather than downloading gigabytes per read.
 * Interrupted downloads resume: a dropped connection, a body cut short or stalled, HTTP 408/429/5xx are
 * retried with backoff (HEAD too), asking only for the bytes still missing, so a flaky network costs
 * seconds, not the model. Every 206 must say (Content-Range) that it holds the bytes asked for, and a file
 * whose ETag/Last-Modified changes during the load is refused: mixed versions would load as garbage.
 */
export class HttpRangeSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  readonly url: string;
  /** The server's ETag (else Last-Modified), when it sends one. */
  readonly version: string | undefined;
  private readonly retry: RetryPolicy;
  /** The whole file, once a server that ignores Range has sent it. */
  private wholeFile: Uint8Array | undefined;
  private constructor(url: string, name: string, size: number, version: string | undefined, retry: RetryPolicy) {
    this.url = url;
    this.name = name;
    this.size = size;
    this.version = version;
    this.retry = retry;
  }

  static async open(url: string, name: string, signal?: AbortSignal, retry: RetryPolicy = DEFAULT_RETRY): Promise<HttpRangeSource> {
    const response = await withRetries(name, retry, signal, async () => {
      const watch = new StallWatch(retry.stallTimeoutMs, signal);
      try {
        const answer = await fetch(url, { method: 'HEAD', signal: watch.signal });
        if (answer.status === 408 || answer.status === 429 || answer.status >= 500) throw new TransientReadError(`HEAD ${url} answered HTTP ${answer.status}`);
        return answer;
      } catch (error) {
        if (signal?.aborted) throw error;
        if (watch.stalled) throw new TransientReadError(`HEAD ${url}: no answer for ${retry.stallTimeoutMs / 1000} s`);
        if (error instanceof TransientReadError) throw error;
        throw new TransientReadError(`could not reach ${url}: ${(error as Error).message}`);
      } finally {
        watch.stop();
      }
    });
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
    return new HttpRangeSource(url, name, size, responseVersion(response), retry);
  }

  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    checkRange(this, offset, length);
    if (this.wholeFile) return this.wholeFile.slice(offset, offset + length);
    const out = new Uint8Array(length);
    if (length === 0) return out;
    const progress = { received: 0 };
    await withRetries(this.name, this.retry, signal, () => this.readInto(out, offset, progress, signal), () => `${progress.received} of ${length} bytes at ${offset} read`);
    return out;
  }

  /** One request for the bytes still missing, filling `out` from progress.received on. */
  private async readInto(out: Uint8Array, offset: number, progress: { received: number }, signal: AbortSignal | undefined): Promise<void> {
    const start = offset + progress.received;
    const end = offset + out.length - 1;
    const watch = new StallWatch(this.retry.stallTimeoutMs, signal);
    try {
      let response: Response;
      try {
        response = await fetch(this.url, { headers: { Range: `bytes=${start}-${end}` }, signal: watch.signal });
      } catch (error) {
        if (signal?.aborted) throw error;
        throw new TransientReadError(watch.stalled ? `GET ${this.url}: no answer for ${this.retry.stallTimeoutMs / 1000} s` : `could not reach ${this.url}: ${(error as Error).message}`);
      }
      if (response.status === 200 && !(start === 0 && out.length === this.size)) {
        if (this.size > WHOLE_FILE_FALLBACK_BYTES) {
          await response.body?.cancel();
          throw new ModelFileReadError(this.name,
            `the server ignored the Range header for ${this.url}: files over ${WHOLE_FILE_FALLBACK_BYTES / 2 ** 20} MiB load only from a host that answers ` +
            'Range requests with 206 Partial Content (most static hosts and CDNs, the Hugging Face hub, vite preview; not python -m http.server)');
        }
        this.wholeFile = await this.readWholeBody(response, watch);
        out.set(this.wholeFile.subarray(start, end + 1), progress.received);
        progress.received = out.length;
        return;
      }
      if (response.status === 408 || response.status === 429 || response.status >= 500) {
        await response.body?.cancel();
        throw new TransientReadError(`GET ${this.url} answered HTTP ${response.status}`);
      }
      if (response.status !== 206 && response.status !== 200) {
        await response.body?.cancel();
        throw new ModelFileReadError(this.name, `GET ${this.url} answered HTTP ${response.status}`);
      }
      const version = responseVersion(response);
      if (this.version !== undefined && version !== undefined && version !== this.version) {
        await response.body?.cancel();
        throw new ModelFileReadError(this.name, `the file changed on the server while loading (version ${this.version}, now ${version}); load the model again`);
      }
      if (response.status === 206) this.checkContentRange(response, start, end);
      if (!response.body) throw new ModelFileReadError(this.name, `GET ${this.url} had no body`);
      const reader = response.body.getReader();
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          watch.progress();
          if (progress.received + value.length > out.length) {
            throw new ModelFileReadError(this.name, `asked for ${out.length} bytes at ${offset}, got more`);
          }
          out.set(value, progress.received);
          progress.received += value.length;
        }
      } catch (error) {
        if (error instanceof ModelFileReadError || signal?.aborted) throw error;
        const why = watch.stalled ? `no data for ${this.retry.stallTimeoutMs / 1000} s` : (error as Error).message;
        throw new TransientReadError(`the connection dropped after ${progress.received} of ${out.length} bytes: ${why}`);
      }
      if (progress.received < out.length) throw new TransientReadError(`the body ended after ${progress.received} of ${out.length} bytes`);
    } finally {
      watch.stop();
    }
  }

  /** The body of a 200 answer: the whole file, exactly its HEAD size. */
  private async readWholeBody(response: Response, watch: StallWatch): Promise<Uint8Array> {
    const whole = new Uint8Array(this.size);
    let received = 0;
    if (!response.body) throw new ModelFileReadError(this.name, `GET ${this.url} had no body`);
    const reader = response.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        watch.progress();
        if (received + value.length > whole.length) throw new ModelFileReadError(this.name, `the server sent more than the ${this.size} bytes HEAD announced`);
        whole.set(value, received);
        received += value.length;
      }
    } catch (error) {
      if (error instanceof ModelFileReadError) throw error;
      throw new TransientReadError(`the connection dropped after ${received} of ${this.size} bytes: ${(error as Error).message}`);
    }
    if (received < whole.length) throw new TransientReadError(`the body ended after ${received} of ${this.size} bytes`);
    return whole;
  }

  /** A 206 must hold exactly the bytes asked for (a proxy or cache answering another range would load garbage). */
  private checkContentRange(response: Response, start: number, end: number): void {
    const header = response.headers.get('content-range');
    const match = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(header ?? '');
    const wrong = !match || Number(match[1]) !== start || Number(match[2]) !== end || (match[3] !== '*' && Number(match[3]) !== this.size);
    if (wrong) {
      void response.body?.cancel();
      throw new ModelFileReadError(this.name, `asked for bytes ${start}-${end} of ${this.size}, but the server answered ${header === null ? 'without a Content-Range' : `Content-Range "${header}"`}`);
    }
  }
}

/** Runs `attempt` until it succeeds, retrying TransientReadError with backoff; then a typed error. */
async function withRetries<T>(name: string, retry: RetryPolicy, signal: AbortSignal | undefined, attempt: () => Promise<T>, state: () => string = () => ''): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (error) {
      if (signal?.aborted) throw signal.reason ?? error;
      if (!(error instanceof TransientReadError)) throw error;
      if (tries >= retry.retries) {
        const read = state();
        throw new ModelFileReadError(name, `${error.message}; gave up after ${tries + 1} attempts${read ? ` (${read})` : ''}`, { cause: error });
      }
      await sleep(retry.initialDelayMs * 2 ** tries, signal);
    }
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
  constructor(baseUrl: string, options: { retry?: Partial<RetryPolicy> } = {}) {
    this.location = resolveFolderUrl(baseUrl);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
  }
  async open(fileName: string, signal?: AbortSignal): Promise<ByteSource> {
    return HttpRangeSource.open(new URL(checkFileName(fileName, this.location), this.location).href, fileName, signal, this.retry);
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

/**
 * A model file's name must be a plain name inside the folder: a shard index naming `../../etc/passwd` or
 * another origin must not make us read it (and echo it in errors).
 */
export function checkFileName(name: unknown, location: string): string {
  if (!isPlainFileName(name)) {
    throw new ModelFileReadError(String(name), `is not a plain file name inside ${location}; model files must sit in the model folder`);
  }
  return name;
}

/** Letters, digits, `_`, `.` and `-` only, and not `.` or `..`: a name that cannot leave its folder. */
export function isPlainFileName(name: unknown): name is string {
  return typeof name === 'string' && /^[\w.-]+$/.test(name) && !/^\.+$/.test(name);
}
