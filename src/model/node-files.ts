// Node-only: a model folder on the local disk, read by byte range through a file handle.
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ModelFileMissingError, ModelFileReadError } from '../errors.ts';
import { type ByteSource, type ModelFiles, checkFileName } from './byte-source.ts';

class NodeFileSource implements ByteSource {
  readonly name: string;
  readonly size: number;
  private readonly path: string;
  constructor(path: string, name: string, size: number) {
    this.path = path;
    this.name = name;
    this.size = size;
  }
  async read(offset: number, length: number, signal?: AbortSignal): Promise<Uint8Array> {
    signal?.throwIfAborted();
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new ModelFileReadError(this.name, `read of ${length} bytes at ${offset} is outside the file (${this.size} bytes)`);
    }
    const handle = await open(this.path, 'r');
    try {
      const bytes = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        signal?.throwIfAborted();
        const { bytesRead } = await handle.read(bytes, done, length - done, offset + done);
        if (bytesRead === 0) throw new ModelFileReadError(this.name, `file shrank while reading at ${offset + done}`);
        done += bytesRead;
      }
      return bytes;
    } finally {
      await handle.close();
    }
  }
}

export class NodeModelFiles implements ModelFiles {
  readonly location: string;
  constructor(directory: string) {
    this.location = directory;
  }
  async open(fileName: string, signal?: AbortSignal): Promise<ByteSource> {
    signal?.throwIfAborted();
    const path = join(this.location, checkFileName(fileName, this.location));
    try {
      const info = await stat(path);
      return new NodeFileSource(path, fileName, info.size);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new ModelFileMissingError(fileName, this.location);
      throw new ModelFileReadError(fileName, `cannot open ${path}`, { cause: error });
    }
  }
}
