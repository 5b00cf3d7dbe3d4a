import { isUtf8 } from 'node:buffer';
import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { quoteQualified, type ColumnInfo } from '@pgferry/pg';
import { avscOptions, avroTypeFor, converterFor, type AvroSchema } from './avro-mapping';
import { fieldWriter, type FieldWriter } from './avro-row-writer';
import { AvroSlab } from './avro-slab';
import { rowsOfLines, type CopyRows } from '@pgferry/pg';
import { wire, WIRE_HEADER_BYTES, writeWireHeader } from './confluent-wire';
import { copyText, splitCopyLine, utf8Run } from './copy-text';
import { fieldNames, keyIndexes, type SourceInfo, type TableSchemas } from './table-schemas';

/**
 * The conversion of one table's COPY text rows into Kafka key and value bytes in the Confluent
 * wire format (magic 0, 4-byte schema id, Avro body), with the schemas of table-schemas.ts.
 */

/**
 * Where encodeRowsFramed writes records: `begin` takes a row's key (null: no key) and returns the
 * slab its value goes into, `end` finishes the record.
 */
export interface RecordSink {
  begin(key: Buffer | null, start: number, end: number): AvroSlab;
  end(): void;
}

/** One encoded row: Kafka key (null for a keyless table) and value, in the wire format. */
export interface EncodedRow {
  key: Buffer | null;
  value: Buffer;
}

/** Encodes rows of one table. Build it once per table and topic, after registering the schemas. */
export class TableEncoder {
  private readonly keyType: avro.Type | null;
  private readonly valueType: avro.Type;
  private readonly convs: ReturnType<typeof converterFor>[];
  private readonly names: string[];
  private readonly keyIdx: number[];
  private readonly valueWriters: FieldWriter[];
  private readonly keyWriters: FieldWriter[];
  private readonly notNull: boolean[];
  private readonly bounds: Int32Array;
  /** Where encodeRowsFramed writes each row's key before it picks the record's batch. */
  private readonly keySlab = new AvroSlab(256, null, true);
  private tail: { tsMs: number; last: boolean; bytes: Buffer } | null = null;

  constructor(
    readonly columns: ColumnInfo[],
    readonly schemas: TableSchemas,
    private readonly ids: { key: number | null; value: number },
    private readonly source: SourceInfo,
  ) {
    this.keyType = schemas.key ? avro.Type.forSchema(schemas.key as avro.Schema, avscOptions()) : null;
    this.valueType = avro.Type.forSchema(schemas.value as avro.Schema, avscOptions());
    this.convs = columns.map((c) => converterFor(avroTypeFor(c) as AvroSchema));
    this.names = fieldNames(columns);
    this.keyIdx = keyIndexes(columns);
    this.valueWriters = columns.map((c) => fieldWriter(c, !c.notNull, copyText));
    this.keyWriters = this.keyIdx.map((i) => fieldWriter(columns[i], false, copyText));
    this.notNull = columns.map((c) => c.notNull);
    this.bounds = new Int32Array(columns.length + 1);
  }

  private record(texts: Array<string | null>): Record<string, unknown> {
    if (texts.length !== this.columns.length) throw this.misfit(String(texts.length));
    const rec: Record<string, unknown> = {};
    for (let i = 0; i < texts.length; i++) {
      const t = texts[i];
      if (t === null && this.notNull[i]) throw this.nullIn(i);
      rec[this.names[i]] = t === null ? null : this.convs[i].toAvro(t);
    }
    return rec;
  }

  /** A snapshot read (op "r") of one COPY line. */
  encodeRead(line: Buffer, tsMs: number, last: boolean): { key: Buffer | null; value: Buffer } {
    try {
      return this.read(line, tsMs, last);
    } catch (err) {
      throw this.refused(err);
    }
  }

  private read(line: Buffer, tsMs: number, last: boolean): { key: Buffer | null; value: Buffer } {
    const after = this.record(splitCopyLine(line));
    const key = this.keyType
      ? wire(
          this.ids.key!,
          this.keyType.toBuffer(
            Object.fromEntries(this.keyIdx.map((i) => [this.names[i], after[this.names[i]]])),
          ),
        )
      : null;
    return { key, value: wire(this.ids.value, this.valueType.toBuffer(this.envelope(after, tsMs, last))) };
  }

  private envelope(after: Record<string, unknown> | null, tsMs: number, last: boolean) {
    return {
      before: null,
      after,
      source: {
        version: 'pgferry-0.1',
        connector: 'postgresql',
        name: this.source.name,
        ts_ms: BigInt(tsMs),
        snapshot: last ? 'last' : 'true',
        db: this.source.db,
        sequence: null,
        schema: this.source.schema,
        table: this.source.table,
        txId: null,
        lsn: null,
        xmin: null,
      },
      op: 'r',
      ts_ms: BigInt(tsMs),
      transaction: null,
      pgferry_unchanged_toast: [],
    };
  }

  /**
   * The envelope's bytes after the "after" record (source, op, ts_ms, transaction, unchanged
   * TOAST list), the same for every row of a batch: cut from avsc's encoding of an envelope
   * with after = null, whose first two bytes are the "before" and "after" null branches.
   */
  private envelopeTail(tsMs: number, last: boolean): Buffer {
    if (this.tail?.tsMs !== tsMs || this.tail.last !== last)
      this.tail = { tsMs, last, bytes: this.valueType.toBuffer(this.envelope(null, tsMs, last)).subarray(2) };
    return this.tail.bytes;
  }

  /**
   * Snapshot reads (op "r") of COPY lines, byte for byte what encodeRead gives, written into
   * shared slabs: the keys and values are views that stay valid after the call. A line that is
   * not valid UTF-8 (a SQL_ASCII source) takes encodeRead's path, which decodes it as UTF-8.
   */
  encodeReads(lines: readonly Buffer[], tsMs: number, last: boolean, slab = new AvroSlab()): EncodedRow[] {
    const out: EncodedRow[] = [];
    this.encodeReadsInto(lines, tsMs, last, slab, (buf, valueStart, valueEnd, keyEnd) =>
      out.push({
        key: this.keyType ? buf.subarray(valueEnd, keyEnd) : null,
        value: buf.subarray(valueStart, valueEnd),
      }),
    );
    return out;
  }

  /**
   * encodeReads without a view or an object per row: each row's value and key are written one
   * after the other into the slab, and `emit` gets the slab's buffer with the value at
   * [valueStart, valueEnd) and the key at [valueEnd, keyEnd) (empty for a keyless table). The
   * slab's buffers are never written again once handed out, so the ranges stay valid.
   */
  encodeReadsInto(
    lines: readonly Buffer[],
    tsMs: number,
    last: boolean,
    slab: AvroSlab,
    emit: (buf: Buffer, valueStart: number, valueEnd: number, keyEnd: number) => void,
  ): void {
    const rows = rowsOfLines(lines);
    let valid = true;
    for (let r = 0; r < lines.length && valid;) {
      const end = utf8Run(lines, r);
      if (end > r) r = end;
      else valid = isUtf8(lines[r++]);
    }
    this.encodeRowsInto(valid ? { ...rows, utf8: true } : rows, tsMs, last, slab, emit);
  }

  /**
   * encodeReadsInto of rows given as byte ranges (see CopyRows): no Buffer per row either. A
   * row is checked for UTF-8 here only when `rows.utf8` is false.
   */
  encodeRowsInto(
    rows: CopyRows,
    tsMs: number,
    last: boolean,
    slab: AvroSlab,
    emit: (buf: Buffer, valueStart: number, valueEnd: number, keyEnd: number) => void,
  ): void {
    // encodeRowsFramed into one slab: the value where the row begins, its key copied after it.
    // Value and key are one unit for the slab (begin once): a move to a new slab carries both.
    let key: Buffer | null = null;
    let keyStart = 0;
    let keyEnd = 0;
    this.encodeRowsFramed(rows, tsMs, last, {
      begin: (k, start, end) => {
        [key, keyStart, keyEnd] = [k, start, end];
        slab.begin();
        return slab;
      },
      end: () => {
        const valueLength = slab.pos - slab.mark;
        if (key) slab.append(key, keyStart, keyEnd);
        emit(slab.buf, slab.mark, slab.mark + valueLength, slab.pos);
      },
    });
  }

  /**
   * Snapshot reads of `rows` (see encodeRowsInto), each row's key first, into `keySlab`, then its
   * value straight into the slab `sink.begin(key)` returns (the record batch of the key's partition: see
   * PartitionedBatches), ended with `sink.end()`. The same key and value bytes as encodeRead.
   */
  encodeRowsFramed(rows: CopyRows, tsMs: number, last: boolean, sink: RecordSink): void {
    try {
      this.writeRows(rows, tsMs, last, sink);
    } catch (err) {
      throw this.refused(err);
    }
  }

  private writeRows(rows: CopyRows, tsMs: number, last: boolean, sink: RecordSink): void {
    const tail = this.envelopeTail(tsMs, last);
    const keySlab = this.keySlab;
    const { bufs, starts, ends } = rows;
    for (let r = 0; r < rows.length; r++) {
      const line = bufs[r];
      const lineStart = starts[r];
      const lineEnd = ends[r];
      if (!rows.utf8 && !isUtf8(line.subarray(lineStart, lineEnd))) {
        const row = this.read(line.subarray(lineStart, lineEnd), tsMs, last);
        const out = sink.begin(row.key, 0, row.key?.length ?? 0);
        out.ensure(row.value.length);
        out.pos += row.value.copy(out.buf, out.pos);
        sink.end();
        continue;
      }
      this.cut(line, lineStart, lineEnd);
      keySlab.pos = 0;
      if (this.keyType) this.writeKey(keySlab, line);
      const out = sink.begin(this.keyType ? keySlab.buf : null, 0, keySlab.pos);
      this.writeValue(out, line, tail);
      sink.end();
    }
  }

  /**
   * Finds the fields of a row (bounds[i] is where field i starts, bounds[i + 1] - 1 where it
   * ends, at a tab). The tab search may run past the row's end into the rest of the buffer: a
   * hit there is not a field.
   */
  private cut(line: Buffer, lineStart: number, lineEnd: number): void {
    const bounds = this.bounds;
    const width = this.columns.length;
    let n = 0;
    bounds[0] = lineStart;
    if (width > 1)
      for (let tab = line.indexOf(9, lineStart); tab >= 0 && tab < lineEnd; tab = line.indexOf(9, tab + 1)) {
        if (++n >= width) break;
        bounds[n] = tab + 1;
      }
    else for (let i = lineStart; i < lineEnd && n === 0; i++) if (line[i] === 9) n = 1;
    if (n !== width - 1) throw this.misfit(n + 1 < width ? String(n + 1) : `${n + 1} or more`);
    bounds[width] = lineEnd + 1;
  }

  /** The value (wire format) of the row cut last, at out.pos. */
  private writeValue(out: AvroSlab, line: Buffer, tail: Buffer): void {
    const bounds = this.bounds;
    const width = this.columns.length;
    out.ensure(WIRE_HEADER_BYTES + 2);
    out.pos = writeWireHeader(out.buf, out.pos, this.ids.value);
    out.buf[out.pos++] = 0; // before: null
    out.buf[out.pos++] = 2; // after: the record branch
    for (let i = 0; i < width; i++) {
      const start = bounds[i];
      const end = bounds[i + 1] - 1;
      if (end - start === 2 && line[start] === 92 && line[start + 1] === 78) {
        if (this.notNull[i]) throw this.nullIn(i);
        out.byte(0);
      } else this.valueWriters[i](out, line, start, end);
    }
    out.append(tail, 0, tail.length);
  }

  /** The key (wire format) of the row cut last, at out.pos. */
  private writeKey(out: AvroSlab, line: Buffer): void {
    const bounds = this.bounds;
    out.ensure(WIRE_HEADER_BYTES);
    out.pos = writeWireHeader(out.buf, out.pos, this.ids.key!);
    for (let k = 0; k < this.keyIdx.length; k++) {
      const i = this.keyIdx[k];
      const start = bounds[i];
      const end = bounds[i + 1] - 1;
      if (end - start === 2 && line[start] === 92 && line[start + 1] === 78) throw this.nullIn(i);
      this.keyWriters[k](out, line, start, end);
    }
  }

  /** A NULL in column i, which was NOT NULL (or in the key) when pgferry read the table. */
  private nullIn(i: number): DataError {
    const name = JSON.stringify(this.columns[i].name);
    return new DataError(
      this.keyIdx.includes(i)
        ? `key column ${name} is NULL (did the table's key change on the source since pgferry read it?): run the full-data phase again`
        : `column ${name} is NULL but was NOT NULL when pgferry read the table (was its NOT NULL dropped on the source since?): run the full-data phase again`,
    );
  }

  /** A COPY row of `fields` fields, which the table's columns do not match. */
  private misfit(fields: string): DataError {
    return new DataError(
      `the COPY row has ${fields} fields, the table has ${this.columns.length} columns: the COPY data is not that of the columns pgferry asked for (damaged on the way, or read with another column list)`,
    );
  }

  /** A DataError of a row, naming the table; anything else (a pgferry bug) as it is. */
  private refused(err: unknown): unknown {
    if (!(err instanceof DataError)) return err;
    return new DataError(
      `snapshot row of ${quoteQualified(this.source.schema, this.source.table)}: ${err.message}`,
      { cause: err },
    );
  }
}
