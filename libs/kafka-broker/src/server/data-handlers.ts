import {
  checkProducedRecords,
  ErrorCode,
  InvalidBatchError,
  splitAndValidate,
} from '@pgferry/kafka-protocol';
import type { PartitionLog } from '../storage/partition-log';
import type { ReadArena } from '../storage/read-arena';
import type { BrokerState } from './broker-state';

/* Produce, Fetch, ListOffsets, DeleteRecords: the record path. */

type Req = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const APPEND_ERRORS = {
  fenced: ErrorCode.INVALID_PRODUCER_EPOCH,
  'out-of-order': ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
  storage: ErrorCode.KAFKA_STORAGE_ERROR,
} as const;

export async function handleProduce(state: BrokerState, req: Req): Promise<Req | null> {
  const acks = req.acks as number;
  // The partitions written, each with its responses: a failed fsync takes back their acknowledgement.
  const touched = new Map<PartitionLog, Req[]>();
  const responses = (req.topicData as Req[]).map((t) => ({
    name: t.name,
    partitionResponses: (t.partitionData as Req[]).map((p) => {
      const out = {
        index: p.index,
        errorCode: ErrorCode.NONE,
        baseOffset: -1n,
        logAppendTimeMs: -1n,
        logStartOffset: -1n,
        recordErrors: [] as Req[],
        errorMessage: null as string | null,
      };
      const fail = (code: number, message: string) =>
        Object.assign(out, { errorCode: code, errorMessage: message });
      if (acks !== 0 && acks !== 1 && acks !== -1)
        return fail(ErrorCode.INVALID_REQUIRED_ACKS, `acks must be 0, 1 or -1, got ${acks}`);
      if (req.transactionalId !== null)
        return fail(
          ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
          'transactions are not supported by the embedded broker',
        );
      const log = state.topics.partition(t.name, p.index);
      if (!log)
        return fail(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic-partition ${t.name}-${p.index}`);
      if (log.offline) {
        state.storageError(log.dir, log.offline);
        return fail(ErrorCode.KAFKA_STORAGE_ERROR, log.offline);
      }
      const records = p.records as Buffer | null;
      if (!records || records.length === 0)
        return fail(ErrorCode.CORRUPT_MESSAGE, 'produce request without records');
      let headers;
      try {
        headers = splitAndValidate(records);
        for (const h of headers) checkProducedRecords(records, Number(h.baseOffset), h);
      } catch (err) {
        const e = err as InvalidBatchError;
        return fail(
          e.code === 'unsupported-magic'
            ? ErrorCode.UNSUPPORTED_FOR_MESSAGE_FORMAT
            : ErrorCode.CORRUPT_MESSAGE,
          e.message,
        );
      }
      const tooBig = headers.find((h) => h.size > log.config.maxMessageBytes);
      if (tooBig)
        return fail(
          ErrorCode.MESSAGE_TOO_LARGE,
          `record batch of ${tooBig.size} bytes exceeds max.message.bytes ${log.config.maxMessageBytes}`,
        );
      if (headers.some((h) => h.isTransactional || h.isControl))
        return fail(
          ErrorCode.INVALID_RECORD,
          'transactional batches are not supported by the embedded broker',
        );
      // One batch per request is what producers send; several are appended in order.
      for (const h of headers) {
        const pos = Number(h.baseOffset);
        const batch = records.subarray(pos, pos + h.size);
        const result = log.append(batch, h);
        if (result.error) {
          // Batches of this request appended before the failing one stay (a producer sends one).
          if (out.baseOffset >= 0n) touched.set(log, [...(touched.get(log) ?? []), out]);
          if (result.error.kind === 'storage') state.storageError(log.dir, result.error.message);
          return fail(APPEND_ERRORS[result.error.kind], result.error.message);
        }
        if (out.baseOffset < 0n) out.baseOffset = result.baseOffset;
      }
      touched.set(log, [...(touched.get(log) ?? []), out]);
      out.logStartOffset = log.logStartOffset;
      return out;
    }),
  }));
  if (acks === 0) return null;
  if (state.options.flush === 'batch')
    await Promise.all(
      [...touched].map(([log, outs]) =>
        log.flush().catch((err: Error) => {
          state.storageError(log.dir, err.message);
          for (const out of outs)
            Object.assign(out, {
              errorCode: ErrorCode.KAFKA_STORAGE_ERROR,
              errorMessage: err.message,
              baseOffset: -1n,
            });
        }),
      ),
    );
  return { responses, throttleTimeMs: 0 };
}

/**
 * Fetch. With `arena`, the record batches are read into it (see ReadArena): the caller must keep
 * the arena, unreset, until the response is written out.
 */
export async function handleFetch(
  state: BrokerState,
  req: Req,
  version: number,
  arena?: ReadArena,
): Promise<Req> {
  const deadline = Date.now() + Math.max(0, req.maxWaitMs as number);
  // The broker's own cap (fetch.max.bytes) bounds what one response holds in memory.
  const asked = version >= 3 && (req.maxBytes as number) > 0 ? (req.maxBytes as number) : Infinity;
  const maxBytes = Math.min(asked, state.options.maxFetchBytes);
  const build = () => {
    // A rebuild after waiting for data drops the previous build's batches.
    arena?.reset();
    let total = 0;
    const waitOn: Array<{ log: PartitionLog; offset: bigint }> = [];
    const responses = (req.topics as Req[]).map((t) => ({
      topic: t.topic,
      partitions: (t.partitions as Req[]).map((p) => {
        const log = state.topics.partition(t.topic, p.partition);
        const base = {
          partitionIndex: p.partition,
          highWatermark: -1n,
          lastStableOffset: -1n,
          logStartOffset: -1n,
          abortedTransactions: null,
          preferredReadReplica: -1,
          records: Buffer.alloc(0),
        };
        if (!log) return { ...base, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
        if (log.offline) return { ...base, errorCode: ErrorCode.KAFKA_STORAGE_ERROR };
        const hw = log.highWatermark;
        const info = {
          ...base,
          highWatermark: hw,
          lastStableOffset: hw,
          logStartOffset: log.logStartOffset,
          abortedTransactions: version >= 4 ? [] : null,
        };
        const offset = p.fetchOffset as bigint;
        if (offset < log.logStartOffset || offset > hw)
          return { ...info, errorCode: ErrorCode.OFFSET_OUT_OF_RANGE };
        if (offset === hw) {
          waitOn.push({ log, offset });
          return { ...info, errorCode: ErrorCode.NONE, records: Buffer.alloc(0) };
        }
        // KIP-74: the first batch goes out whole even over the limits, so consumers always progress.
        const limit = Math.min(p.partitionMaxBytes as number, maxBytes - total);
        const data =
          limit > 0 || total === 0
            ? log.read(offset, Math.max(limit, 0), total === 0, arena)
            : Buffer.alloc(0);
        total += data.length;
        return { ...info, errorCode: ErrorCode.NONE, records: data };
      }),
    }));
    return { total, waitOn, responses };
  };
  let result = build();
  while (
    result.total < Math.max(1, req.minBytes as number) &&
    Date.now() < deadline &&
    result.waitOn.length > 0
  ) {
    const remaining = deadline - Date.now();
    await Promise.race(result.waitOn.map((w) => w.log.waitForData(w.offset, remaining)));
    result = build();
  }
  if (
    result.total === 0 &&
    result.waitOn.length === 0 &&
    Date.now() < deadline &&
    (req.minBytes as number) > 0
  ) {
    // Nothing to wait on (all partitions errored): honour max_wait_ms like Kafka, without spinning.
    await new Promise((r) => setTimeout(r, Math.min(deadline - Date.now(), 100)));
  }
  return { throttleTimeMs: 0, errorCode: ErrorCode.NONE, sessionId: 0, responses: result.responses };
}

export function handleListOffsets(state: BrokerState, req: Req): Req {
  return {
    throttleTimeMs: 0,
    topics: (req.topics as Req[]).map((t) => ({
      name: t.name,
      partitions: (t.partitions as Req[]).map((p) => {
        const log = state.topics.partition(t.name, p.partitionIndex);
        if (!log)
          return {
            partitionIndex: p.partitionIndex,
            errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            timestamp: -1n,
            offset: -1n,
            leaderEpoch: -1,
          };
        const ts = p.timestamp as bigint;
        let found: { offset: bigint; timestamp: bigint };
        if (ts === -1n) found = { offset: log.highWatermark, timestamp: -1n };
        else if (ts === -2n) found = { offset: log.logStartOffset, timestamp: -1n };
        else found = log.offsetForTimestamp(ts);
        return {
          partitionIndex: p.partitionIndex,
          errorCode: ErrorCode.NONE,
          timestamp: found.timestamp,
          offset: found.offset,
          leaderEpoch: 0,
        };
      }),
    })),
  };
}

export async function handleDeleteRecords(state: BrokerState, req: Req): Promise<Req> {
  const topics = (req.topics as Req[]).map((t) => ({
    name: t.name,
    partitions: (t.partitions as Req[]).map((p) => {
      const log = state.topics.partition(t.name, p.partitionIndex);
      if (!log)
        return {
          partitionIndex: p.partitionIndex,
          lowWatermark: -1n,
          errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        };
      const offset = (p.offset as bigint) === -1n ? log.highWatermark : (p.offset as bigint);
      if (offset < 0n || offset > log.highWatermark)
        return {
          partitionIndex: p.partitionIndex,
          lowWatermark: log.logStartOffset,
          errorCode: ErrorCode.OFFSET_OUT_OF_RANGE,
        };
      return {
        partitionIndex: p.partitionIndex,
        lowWatermark: log.deleteRecordsBefore(offset),
        errorCode: ErrorCode.NONE,
      };
    }),
  }));
  return { throttleTimeMs: 0, topics };
}
