import { DataError } from '@pgferry/core';
import { decodeTransactionRecord, STREAM_POSITION_HEADER, type TransactionRecord } from '@pgferry/avro';
import { recordHeaderAt, type RecordView } from '@pgferry/kafka-protocol';

/** A fetched record both appliers keep as ranges of its batch: buf[keyStart, keyEnd), -1 for none; likewise the value. */
export interface RecordRanges {
  offset: bigint | number;
  buf: Buffer;
  keyStart: number;
  keyEnd: number;
  valueStart: number;
  valueEnd: number;
}

/** A record as the dead-letter topic takes it: its key and value as views (null for none). */
export function recordViews(r: RecordRanges): { offset: bigint; key: Buffer | null; value: Buffer | null } {
  return {
    offset: BigInt(r.offset),
    key: r.keyStart < 0 ? null : r.buf.subarray(r.keyStart, r.keyEnd),
    value: r.valueStart < 0 ? null : r.buf.subarray(r.valueStart, r.valueEnd),
  };
}

/**
 * How an applier names a record it cannot decode: by where it is (topic, partition, offset),
 * the decoder's reason kept as the cause. With onError dead-letter the record is parked with
 * this message as its reason; strict, the message also says how to go on.
 */
export function undecodableRecord(
  where: string,
  offset: bigint,
  err: DataError,
  onError: 'strict' | 'dead-letter' | undefined,
): DataError {
  const message = `${where} offset ${offset}: ${err.message}`;
  return new DataError(
    onError === 'dead-letter'
      ? message
      : `${message}; the applier stops here (onError strict); with onError dead-letter it parks such a record in the dead-letter topic and goes on`,
    { cause: err },
  );
}

/**
 * Where a record's pgferry.pos header value starts in its batch when it is `length` bytes, or -1
 * (see recordHeaderAt); malformed headers are a DataError naming `where`.
 */
export function positionHeaderAt(r: RecordView, where: string, length: number): number {
  try {
    return recordHeaderAt(r, STREAM_POSITION_HEADER, length);
  } catch (err) {
    throw new DataError(`${where}: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * The BEGIN or END record at the head of the transaction topic; one that does not decode stops
 * the applier whatever onError says: the topic orders every change, nothing can be skipped.
 */
export function transactionRecord(
  topic: string,
  first: { offset: number; buf: Buffer; valueStart: number; valueEnd: number },
): TransactionRecord {
  try {
    return decodeTransactionRecord(first.buf.subarray(first.valueStart, first.valueEnd));
  } catch (err) {
    if (!(err instanceof DataError)) throw err;
    throw new DataError(
      `Kafka topic ${topic} partition 0 offset ${first.offset}: ${err.message}; the transaction topic was written by something else than this task's capture`,
      { cause: err },
    );
  }
}
