// Model files over HTTP: Range reads, a server that ignores Range, missing files, aborted reads.
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelFileMissingError, ModelFileReadError } from '../../src/errors.ts';
import { HttpModelFiles } from '../../src/model/byte-source.ts';
import { SafetensorsCheckpoint } from '../../src/model/safetensors.ts';

const body = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 256));
const requests: string[] = [];
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
        response.writeHead(206, { 'content-length': end - start + 1 });
        response.write(body.subarray(start, start + 7), () => response.destroy());
      } else {
        response.writeHead(206, { 'content-length': end - start + 1 });
        response.end(body.subarray(start, end + 1));
      }
    } else if (request.url?.startsWith('/flaky/') && request.method === 'HEAD') {
      response.writeHead(200, { 'content-length': body.length }).end();
    } else if (request.url?.startsWith('/spa/')) {
      // A single-page-app host: every unknown path gets the index page, status 200, no Content-Length.
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'transfer-encoding': 'chunked' });
      response.end(request.method === 'HEAD' ? undefined : '<!doctype html><p>app</p>');
    } else if (request.url?.startsWith('/unsized/')) {
      response.writeHead(200, { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' });
      response.end(request.method === 'HEAD' ? undefined : body);
    } else if (request.url?.endsWith('/data.bin')) {
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

  it('refuses a server that ignores Range instead of downloading the whole file', async () => {
    const file = await new HttpModelFiles(`${base}/lazy/`).open('data.bin');
    await expect(file.read(300, 5)).rejects.toThrow(ModelFileReadError);
    await expect(file.read(300, 5)).rejects.toThrow(/server ignored the Range header/);
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
});
