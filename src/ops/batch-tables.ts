// The tables that tell the paged kernels (rope-kv, paged-attention) which sequence, position, pages and
// documents each row of a batch has, packed into one u32 buffer: WebGPU guarantees only 8 storage
// buffers per shader stage, so they cannot have one binding each.
import { MAX_DOCUMENTS } from '../kv/documents.ts';

export interface BatchTableSequence {
  pages: readonly number[];
  kvLength: number;
  documents: readonly { start: number; end: number; visibleMask: number }[];
}

export interface BatchTables {
  /**
   * rows (4 u32 each: slot, position, document, 0), then sequences, documents, page tables: the pages
   * last, so that the offsets stay the same while decode steps add pages (a step's recorded dispatches,
   * whose Params hold them, replay until the batch changes: GpuLlama.replayDecodeLayers).
   */
  data: Uint32Array<ArrayBuffer>;
  sequencesOffset: number;
  pageTableOffset: number;
  documentsOffset: number;
}

/** Packs rows (slot, position, document) and their sequences into one table buffer. */
export function packBatchTables(rows: readonly (readonly [number, number, number])[], sequences: readonly BatchTableSequence[]): BatchTables {
  const sequencesOffset = rows.length * 4;
  const documentsOffset = sequencesOffset + sequences.length * 4;
  const documentCount = sequences.reduce((sum, sequence) => sum + sequence.documents.length, 0);
  const pageTableOffset = documentsOffset + documentCount * 4;
  const pageCount = sequences.reduce((sum, sequence) => sum + sequence.pages.length, 0);
  const data = new Uint32Array(pageTableOffset + pageCount);
  rows.forEach(([slot, position, document], r) => data.set([slot, position, document, 0], 4 * r));
  let pages = 0;
  let documents = 0;
  sequences.forEach((sequence, slot) => {
    if (sequence.documents.length > MAX_DOCUMENTS) throw new RangeError(`at most ${MAX_DOCUMENTS} documents per sequence`);
    data.set([pages, sequence.kvLength, documents, sequence.documents.length], sequencesOffset + 4 * slot);
    data.set(sequence.pages, pageTableOffset + pages);
    pages += sequence.pages.length;
    for (const span of sequence.documents) data.set([span.start, span.end, span.visibleMask, 0], documentsOffset + 4 * documents++);
  });
  return { data, sequencesOffset, pageTableOffset, documentsOffset };
}

/** Bytes of the table buffer for a batch capacity. */
export function batchTablesBytes(rows: number, sequences: number, pagesPerSequence: number): number {
  return (rows * 4 + sequences * 4 + sequences * pagesPerSequence + sequences * MAX_DOCUMENTS * 4) * 4;
}
