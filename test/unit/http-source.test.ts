// Model files over HTTP: Range reads, a server that ignores Range, missing files, aborted reads.
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelFileMissingError, ModelFileReadError } from '../../src/errors.ts';
import { HttpModelFiles, WHOLE_FILE_FALLBACK_BYTES } from '../../src/model/byte-source.ts';
import { SafetensorsCheckpoint } from '../../src/model/safetensors.ts';

const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256));
const requests: string[] = [];
const stalls: string[] = [];
const lazyGets: string[] = [];
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((request, response) => {
    const range = /bytes=(\d+)-(\d+)/.exec(request.headers.range ?? '');
    if (request.url === '/honest/data.bin' && range) {
      const [start, end] = [Number(range[1]), Number(range[2])];
      response.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${body.length}` });
      response.end(request.method === 'HEAD' ? undefined : body.subarray(start, end + 1));
    } else if (request.url?.startsWith('/flaky/') && range && request.method === 'GET') {
      // Fails in turn: HTTP 503, then a body cut off after 7 bytes, then answers properly.
      const [start, end] = [Number(range[1]), Number(range[2])];
      requests.push(`${start}-${end}`);
      const attempt = requests.length;
      if (request.url === '/flaky/dead.bin' || attempt === 1) {
        response.writeHead(503).end();
      } else if (attempt === 2) {
        response.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${body.length}` });
        response.write(body.subarray(start, start + 7), () => response.destroy());
      } else {
        response.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${body.length}` });
        response.end(body.subarray(start, end + 1));
      }
    } else if (request.url?.startsWith('/flaky/') && request.method === 'HEAD') {
      response.writeHead(200, { 'content-length': body.length }).end();
    } else if (request.url?.startsWith('/stall/')) {
      // HEAD: answers only every third time; GET: sends 5 bytes, then nothing, on the first attempt.
      stalls.push(`${request.method} ${request.headers.range ?? ''}`);
      if (request.method === 'HEAD') {
        if (stalls.filter((entry) => entry.startsWith('HEAD')).length % 3 === 0) response.writeHead(200, { 'content-length': body.length }).end();
        return; // otherwise never answer
      }
      const [start, end] = [Number(range![1]), Number(range![2])];
      response.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${body.length}` });
      if (stalls.filter((entry) => entry.startsWith('GET')).length === 1) response.write(body.subarray(start, start + 5));
      else response.end(body.subarray(start, end + 1));
    } else if (request.url?.startsWith('/lying/') && range) {
      // A 206 with the bytes of another range (a broken proxy or cache), or a file replaced mid-load.
      const [start, end] = [Number(range[1]), Number(range[2])];
      const etag = request.url.endsWith('changing.bin') ? '"v2"' : '"v1"';
      response.writeHead(206, { 'content-length': end - start + 1, 'content-range': `bytes ${start + 1}-${end + 1}/${body.length}`, etag });
      response.end(body.subarray(start + 1, end + 2));
    } else if (request.url?.startsWith('/lying/')) {
      response.writeHead(200, { 'content-length': body.length, etag: '"v1"' }).end();
    } else if (request.url?.startsWith('/spa/')) {
      // A single-page-app host: every unknown path gets the index page, status 200, no Content-Length.
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'transfer-encoding': 'chunked' });
      response.end(request.method === 'HEAD' ? undefined : '<!doctype html><p>app</p>');
    } else if (request.url?.startsWith('/unsized/')) {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' });
      response.end(request.method === 'HEAD' ? undefined : body);
    } else if (request.url === '/lazy/big.bin') {
      // Ignores Range for a file too big to read whole: the reader must give up after the headers.
      response.writeHead(200, { 'content-length': WHOLE_FILE_FALLBACK_BYTES + 1 });
      if (request.method === 'HEAD') response.end();
      else response.write(body, () => setTimeout(() => response.destroy(), 50));
    } else if (request.url?.endsWith('/data.bin')) {
      if (request.method === 'GET') lazyGets.push(request.headers.range ?? '');
      response.writeHead(200, { 'content-length': body.length }); // ignores Range
      response.end(request.method === 'HEAD' ? undefined : body);
    } else {
      response.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe('HttpModelFiles', () => {
  it('reads exactly the requested byte range', async () => {
    const file = await new HttpModelFiles(`${base}/honest`).open('data.bin');
    expect(file.size).toBe(1000);
    expect([...(await file.read(300, 5))]).toEqual([44, 45, 46, 47, 48]);
  });

  it('reads a small file whole, once, from a server that ignores Range, and serves later reads from it', async () => {
    const file = await new HttpModelFiles(`${base}/lazy/`).open('data.bin');
    expect([...(await file.read(300, 5))]).toEqual([44, 45, 46, 47, 48]);
    expect([...(await file.read(998, 2))]).toEqual([230, 231]);
    expect([...(await file.read(0, 1000))]).toEqual([...body]);
    expect(lazyGets).toEqual(['bytes=300-304']);
  });

  it('refuses a big file from a server that ignores Range, saying what the host needs, instead of downloading it per read', async () => {
    const file = await new HttpModelFiles(`${base}/lazy/`).open('big.bin');
    const read = file.read(300, 5);
    await expect(read).rejects.toThrow(ModelFileReadError);
    await expect(read).rejects.toThrow(/server ignored the Range header.*only from a host that answers Range requests with 206/);
  });

  it('reports a missing file by name', async () => {
    await expect(new HttpModelFiles(`${base}/honest`).open('config.json')).rejects.toBeInstanceOf(ModelFileMissingError);
    await expect(SafetensorsCheckpoint.open(new HttpModelFiles(`${base}/honest`))).rejects.toThrow(/^model\.safetensors is missing/);
  });

  it('survives an interrupted download: retries HTTP 503 and resumes a cut-off body from where it stopped', async () => {
    requests.length = 0;
    const file = await new HttpModelFiles(`${base}/flaky`, { retry: { retries: 3, initialDelayMs: 5 } }).open('data.bin');
    expect([...(await file.read(100, 40))]).toEqual([...body.subarray(100, 140)]);
    // 503, then 7 bytes and a dropped connection, then only the 33 missing bytes.
    expect(requests).toEqual(['100-139', '100-139', '107-139']);
  });

  it('gives up after its retries with a typed error naming the file', async () => {
    requests.length = 0;
    const file = await new HttpModelFiles(`${base}/flaky`, { retry: { retries: 2, initialDelayMs: 5 } }).open('dead.bin');
    await expect(file.read(0, 10)).rejects.toThrow(/dead\.bin: .*HTTP 503; gave up after 3 attempts/);
    expect(requests).toHaveLength(3);
  });

  it('takes the web page a single-page-app host returns for an unknown path as a missing file', async () => {
    await expect(new HttpModelFiles(`${base}/spa`).open('generation_config.json')).rejects.toBeInstanceOf(ModelFileMissingError);
    await expect(new HttpModelFiles(`${base}/spa`).open('generation_config.json')).rejects.toThrow(/answered with a web page/);
  });

  it('refuses a file whose size the server does not give, instead of taking it as empty', async () => {
    await expect(new HttpModelFiles(`${base}/unsized`).open('config.json')).rejects.toThrow(/no usable Content-Length/);
  });

  it('stops a read when its signal aborts', async () => {
    const file = await new HttpModelFiles(`${base}/honest`).open('data.bin');
    await expect(file.read(0, 10, AbortSignal.abort())).rejects.toThrow(/abort/i);
  });

  it('retries a stalled HEAD and a body that stops sending (stall timeout), then reads the right bytes', async () => {
    stalls.length = 0;
    const files = new HttpModelFiles(`${base}/stall`, { retry: { retries: 3, initialDelayMs: 5, stallTimeoutMs: 150 } });
    const file = await files.open('data.bin');
    expect(stalls.filter((entry) => entry.startsWith('HEAD'))).toHaveLength(3); // two unanswered, then answered
    expect([...(await file.read(200, 30))]).toEqual([...body.subarray(200, 230)]);
    expect(stalls.filter((entry) => entry.startsWith('GET'))).toEqual(['GET bytes=200-229', 'GET bytes=205-229']);
    // No answer at all: a typed error after the retries, in bounded time.
    const started = performance.now();
    await expect(new HttpModelFiles(`${base}/stall`, { retry: { retries: 1, initialDelayMs: 5, stallTimeoutMs: 100 } }).open('x.bin'))
      .rejects.toSatisfy((error: unknown) => error instanceof ModelFileReadError && /no answer/.test(error.message));
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it('refuses a 206 holding another range than asked for, and a file whose version changes mid-load', async () => {
    const file = await new HttpModelFiles(`${base}/lying`, { retry: { retries: 0, initialDelayMs: 5, stallTimeoutMs: 1000 } }).open('data.bin');
    await expect(file.read(10, 5)).rejects.toThrow(/asked for bytes 10-14 of 1000, but the server answered Content-Range "bytes 11-15\/1000"/);
    const changing = await new HttpModelFiles(`${base}/lying`).open('changing.bin');
    await expect(changing.read(10, 5)).rejects.toThrow(/changed on the server while loading/);
  });

  it('opens only plain file names inside the folder (no ../, no other origin)', async () => {
    const files = new HttpModelFiles(`${base}/honest`);
    for (const name of ['../../etc/passwd', 'https://example.invalid/x', '/etc/passwd', '.', '..', 'a/b.safetensors']) {
      await expect(files.open(name), name).rejects.toBeInstanceOf(ModelFileReadError);
    }
  });
});
