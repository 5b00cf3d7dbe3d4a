/**
 * Rows of COPY text as byte ranges: row i is bufs[i][starts[i], ends[i]), without its newline.
 * Rows of one network read share its buffer, so a batch costs no Buffer and no object per row.
 */
export interface CopyRows {
  readonly length: number;
  readonly bufs: readonly Buffer[];
  readonly starts: ArrayLike<number>;
  readonly ends: ArrayLike<number>;
  /**
   * True when every row is known to be valid UTF-8 (checked by whoever cut the rows); false when
   * some row may not be, and the encoder checks each row.
   */
  readonly utf8: boolean;
}

/** A growing batch of rows, filled by a reader and handed out whole. */
export class CopyRowBatch implements CopyRows {
  readonly bufs: Buffer[] = [];
  readonly starts: number[] = [];
  readonly ends: number[] = [];
  utf8 = true;
  /** COPY text bytes of the rows, newlines included. */
  bytes = 0;

  get length(): number {
    return this.bufs.length;
  }

  push(buf: Buffer, start: number, end: number): void {
    this.bufs.push(buf);
    this.starts.push(start);
    this.ends.push(end);
    this.bytes += end - start + 1;
  }
}

/** Lines as rows (each line its own range), UTF-8 unchecked. */
export function rowsOfLines(lines: readonly Buffer[]): CopyRows {
  return {
    length: lines.length,
    bufs: lines,
    starts: new Array<number>(lines.length).fill(0),
    ends: lines.map((l) => l.length),
    utf8: false,
  };
}
