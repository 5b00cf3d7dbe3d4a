import type { Client } from 'pg';
import { DataError, SlabPool } from '@pgferry/core';
import { classifyPgError, quoteQualified, copyLine, CopyTextSink, CopyBinarySink } from '@pgferry/pg';
import { AvroCopyDecoder, RecordDecoder, wireSchemaId } from '@pgferry/avro';
import type { BinaryWriter, RegistryClient } from '@pgferry/avro';
import { columnTypeOids, type CopyFormat } from './pg-apply-session';
import type { ApplierTarget } from './applier';

/**
 * One batch of a partition to apply: its records' offsets and values, and the offset after it.
 * Record i's value is bufs[i][starts[i], ends[i]) (bufs[i] null for a tombstone): ranges of the
 * fetch response, without a Buffer per record.
 */
export interface SnapshotWork {
  topic: string;
  partition: number;
  offsets: Array<number | string>;
  bufs: Array<Buffer | null>;
  starts: number[];
  ends: number[];
  nextOffset: bigint;
}

/** One batch decoded for COPY: `rows` rows of `columns` (null: no row) in `chunks`. */
export interface DecodedBatch {
  format: CopyFormat;
  columns: string[] | null;
  rows: number;
  chunks: Buffer[];
  /** Gives the chunks' buffers back for later batches, once the COPY that sent them ended. */
  release?: () => void;
}

/**
 * Turns a batch of snapshot records into COPY rows for the snapshot applier: COPY binary when
 * decodeBinary takes the batch (the destination parses it for much less CPU than text), else COPY
 * text (decodeText). Shared by the applier's lanes: the destination's column types are asked
 * once per table and the binary chunk buffers are reused across batches.
 */
export class SnapshotCopyDecoder {
  private readonly decoder: RecordDecoder;
  private readonly copyDecoder: AvroCopyDecoder;
  /** Destination column type OIDs by topic, asked once per table (see decodeBinary). */
  private readonly columnTypes = new Map<string, Promise<Map<string, number>>>();
  /** Chunk buffers of the binary batches, reused once a batch's COPY ended (see CopyBinarySink). */
  private readonly binaryBuffers = new SlabPool(1 << 20, 16);

  constructor(
    registry: RegistryClient,
    private readonly byTopic: ReadonlyMap<string, ApplierTarget>,
  ) {
    this.decoder = new RecordDecoder(registry);
    this.copyDecoder = new AvroCopyDecoder(registry);
  }

  /**
   * `work` as one COPY binary stream, or null when some record is not for the binary way: its
   * schema has a column without a binary writer or whose destination type differs from the
   * source's, it has a "before" image, a value the writers do not carry exactly (a BC timestamp,
   * an array with dimensions, ...), or a record decodeText reports (an unexpected op, columns
   * that change within the batch). An undecodable value throws here as in decodeText. The
   * destination's column types are asked once per table, on `client` of the first lane that
   * needs them (and again while the table is not there).
   */
  async decodeBinary(client: Client, work: SnapshotWork): Promise<DecodedBatch | null> {
    const sink = new CopyBinarySink(1 << 20, this.binaryBuffers);
    let batch: DecodedBatch | null = null;
    try {
      const columns = await this.writeBinary(client, work, sink);
      if (columns !== undefined)
        batch = {
          format: 'binary',
          columns,
          rows: sink.rows,
          chunks: sink.take(),
          release: () => sink.release(),
        };
      return batch;
    } finally {
      // Not for the binary way (or failed): nothing was handed out, the buffers go back now.
      if (!batch) sink.release();
    }
  }

  /** decodeBinary's rows into `sink`: the batch's columns, or undefined when it is not for the binary way. */
  private async writeBinary(
    client: Client,
    work: SnapshotWork,
    sink: CopyBinarySink,
  ): Promise<string[] | null | undefined> {
    const target = this.byTopic.get(work.topic)!;
    const { bufs, starts, ends } = work;
    let types: Map<string, number> | null = null;
    let columns: string[] | null = null;
    let lastId = -1;
    let writers: BinaryWriter[] | null = null;
    let i = 0;
    try {
      for (; i < bufs.length; i++) {
        const buf = bufs[i];
        if (!buf) continue;
        const start = starts[i];
        const end = ends[i];
        const id = end - start < 7 ? -1 : wireSchemaId(buf, start, end);
        if (id < 0) return undefined;
        if (id !== lastId) {
          if (!this.copyDecoder.ready(id)) await this.copyDecoder.load(id);
          if (!types) {
            let p = this.columnTypes.get(work.topic);
            if (!p) {
              const table = quoteQualified(target.schema, target.table);
              p = columnTypeOids(client, table).catch((err) => {
                throw classifyPgError(err, `reading the column types of ${table} on the destination`);
              });
              this.columnTypes.set(work.topic, p);
              p.catch(() => this.columnTypes.delete(work.topic));
            }
            types = await p;
            // No such table (yet): this batch goes as text, and the next one asks again.
            if (!types.size) {
              this.columnTypes.delete(work.topic);
              return undefined;
            }
          }
          writers = this.copyDecoder.binaryWriters(id, work.topic, types);
          if (!writers) return undefined;
          lastId = id;
        }
        const fast = this.copyDecoder.decodeBinaryRange(buf, start, end, sink, writers!);
        if (!fast || (fast.op !== 'r' && fast.op !== 'c')) return undefined;
        const cols = fast.plan.columns;
        if (columns && cols !== columns && cols.join('\u0000') !== columns.join('\u0000')) return undefined;
        columns = cols;
      }
    } catch (err) {
      throw atRecord(work, i, err);
    }
    return columns;
  }

  /**
   * `work` as COPY text lines. Rows go straight from Avro to COPY text; a record the fast path
   * does not take (one with a "before" image) goes through RecordDecoder, in its place in the
   * batch.
   */
  async decodeText(work: SnapshotWork): Promise<DecodedBatch> {
    const target = this.byTopic.get(work.topic)!;
    const sink = new CopyTextSink();
    let columns: string[] | null = null;
    const { offsets, bufs, starts, ends } = work;
    let i = 0;
    try {
      for (; i < bufs.length; i++) {
        const buf = bufs[i];
        if (!buf) continue;
        const start = starts[i];
        const end = ends[i];
        const id = wireSchemaId(buf, start, end);
        if (id >= 0 && !this.copyDecoder.ready(id)) await this.copyDecoder.load(id);
        let op: string;
        let cols: string[];
        const fast = this.copyDecoder.decodeRange(buf, start, end, sink);
        if (fast) {
          op = fast.op;
          cols = fast.plan.columns;
        } else {
          const change = await this.decoder.decode(buf.subarray(start, end));
          op = change.op;
          cols = change.columns;
          if (!change.after)
            throw new DataError(
              `Kafka topic ${work.topic} partition ${work.partition} offset ${offsets[i]}: a "${op}" record without a row`,
            );
          sink.line(copyLine(change.after));
        }
        if (op !== 'r' && op !== 'c')
          throw new DataError(
            `Kafka topic ${work.topic} partition ${work.partition} offset ${offsets[i]}: unexpected op "${op}" in the full-data phase`,
          );
        if (columns && cols !== columns && cols.join('\u0000') !== columns.join('\u0000'))
          throw new DataError(
            `the columns of ${quoteQualified(target.schema, target.table)} changed within one batch`,
          );
        columns = cols;
      }
    } catch (err) {
      throw atRecord(work, i, err);
    }
    return { format: 'text', columns, rows: sink.rows, chunks: sink.take() };
  }
}

/**
 * A DataError of record i of `work` named by where the record is (topic, partition, offset);
 * other errors pass as they are. The snapshot has no dead-letter mode: the applier stops.
 */
function atRecord(work: SnapshotWork, i: number, err: unknown): unknown {
  if (!(err instanceof DataError) || err.message.startsWith('Kafka topic ')) return err;
  return new DataError(
    `Kafka topic ${work.topic} partition ${work.partition} offset ${work.offsets[i]}: ${err.message}`,
    { cause: err },
  );
}
