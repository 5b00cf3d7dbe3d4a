import {
  Reader,
  Writer,
  ApiKey,
  ErrorCode,
  API_SPECS,
  buildBatch,
  decodeRecords,
  sealBatch,
  writeStruct,
} from '@pgferry/kafka-protocol';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { waitFor } from '@pgferry/testing';
import { RawClient } from '../test/raw-client';
import { startTestBroker } from '../test/broker-fixture';

type Broker = Awaited<ReturnType<typeof startTestBroker>>;

/** Whole response frames in `buf`. */
function countFrames(buf: Buffer): number {
  let n = 0;
  for (
    let at = 0;
    at + 4 <= buf.length && at + 4 + buf.readInt32BE(at) <= buf.length;
    at += 4 + buf.readInt32BE(at)
  )
    n++;
  return n;
}

function produceReq(topic: string, partition: number, records: Buffer, acks = -1) {
  return {
    transactionalId: null,
    acks,
    timeoutMs: 5000,
    topicData: [{ name: topic, partitionData: [{ index: partition, records }] }],
  };
}

describe('broker protocol edge cases (raw bytes)', () => {
  let broker: Broker;
  beforeAll(async () => {
    broker = await startTestBroker({ maxRequestBytes: 1024 * 1024 });
  });
  afterAll(() => broker?.stop());

  it('answers ApiVersions v3 (flexible) with a v0 response: UNSUPPORTED_VERSION and the supported ranges', async () => {
    const c = await RawClient.open(broker.port);
    // ApiVersions v3 header v2: key 18, version 3, correlation 7, client id "rdkafka", empty tagged fields,
    // then the compact body: client_software_name "x", version "1", tagged fields.
    const body = Buffer.from([0x00, 0x02, 0x78, 0x02, 0x31, 0x00]);
    const w = new Writer().int32(0).int16(18).int16(3).int32(7).nstring('rdkafka').int8(0).raw(body);
    const frame = Buffer.from(w.finish());
    frame.writeInt32BE(frame.length - 4, 0);
    const res = await c.sendRaw(frame);
    const r = new Reader(res!);
    expect(r.int32()).toBe(7);
    expect(r.int16()).toBe(ErrorCode.UNSUPPORTED_VERSION);
    const n = r.int32();
    const ranges = new Map<number, [number, number]>();
    for (let i = 0; i < n; i++) ranges.set(r.int16(), [r.int16(), r.int16()]);
    expect(r.remaining()).toBe(0);
    expect(ranges.get(ApiKey.ApiVersions)).toEqual([0, 2]);
    expect(ranges.get(ApiKey.Produce)).toEqual([3, 8]);
    expect(ranges.get(ApiKey.Fetch)).toEqual([4, 11]);
    expect(ranges.size).toBe(20);
    c.close();
  });

  it('closes the connection on an unknown API key, a truncated body or an oversized frame, and keeps serving', async () => {
    for (const bad of [
      RawClient.frame(999, 0, 1, Buffer.alloc(0)),
      RawClient.frame(ApiKey.Metadata, 4, 1, Buffer.from([0x00, 0x00, 0x00, 0x05, 0x00])),
      Buffer.from([0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0]),
      Buffer.from([0xff, 0xff, 0xff, 0xfe]),
    ]) {
      const c = await RawClient.open(broker.port);
      expect(await c.sendRaw(bad)).toBeNull();
      expect(c.isClosed).toBe(true);
    }
    const ok = await RawClient.open(broker.port);
    const meta = await ok.request(ApiKey.Metadata, 4, { topics: [], allowAutoTopicCreation: false });
    expect(meta.brokers).toEqual([expect.objectContaining({ nodeId: 0, port: broker.port })]);
    ok.close();
  });

  it('refuses a batch with a bad CRC with CORRUPT_MESSAGE and stores nothing', async () => {
    const c = await RawClient.open(broker.port);
    await c.request(ApiKey.CreateTopics, 3, {
      topics: [{ name: 'crc', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
      timeoutMs: 1000,
      validateOnly: false,
    });
    const batch = buildBatch([{ key: Buffer.from('k'), value: Buffer.from('v') }]);
    batch[batch.length - 1] ^= 0xff;
    const res = await c.request(ApiKey.Produce, 8, produceReq('crc', 0, batch));
    expect(res.responses[0].partitionResponses[0]).toMatchObject({
      errorCode: ErrorCode.CORRUPT_MESSAGE,
      errorMessage: expect.stringMatching(/CRC mismatch/),
    });
    const offsets = await c.request(ApiKey.ListOffsets, 1, {
      replicaId: -1,
      topics: [{ name: 'crc', partitions: [{ partitionIndex: 0, timestamp: -1n }] }],
    });
    expect(offsets.topics[0].partitions[0].offset).toBe(0n);
    const unknown = await c.request(
      ApiKey.Produce,
      8,
      produceReq('no-such-topic', 0, buildBatch([{ value: Buffer.from('v') }])),
    );
    expect(unknown.responses[0].partitionResponses[0].errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    const badPartition = await c.request(
      ApiKey.Produce,
      8,
      produceReq('crc', 5, buildBatch([{ value: Buffer.from('v') }])),
    );
    expect(badPartition.responses[0].partitionResponses[0].errorCode).toBe(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    );
    c.close();
  });

  it('refuses a batch whose header lies about its records (valid CRC) and stores nothing', async () => {
    const c = await RawClient.open(broker.port);
    await c.request(ApiKey.CreateTopics, 3, {
      topics: [{ name: 'liar', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
      timeoutMs: 1000,
      validateOnly: false,
    });
    const two = [{ value: Buffer.from('one') }, { value: Buffer.from('two') }];
    for (const [compression, claims, message] of [
      ['none', 5, 'record batch header says 5 records, but it holds 2'],
      ['lz4', 5, 'record batch header says 5 records, but it holds 2'],
      ['none', 1, 'record batch header says 1 records, but'],
    ] as const) {
      const lie = buildBatch(two, { compression });
      lie.writeInt32BE(claims, 57);
      lie.writeInt32BE(claims - 1, 23);
      sealBatch(lie, 0, lie.length);
      const res = await c.request(ApiKey.Produce, 8, produceReq('liar', 0, lie));
      expect(res.responses[0].partitionResponses[0]).toMatchObject({
        errorCode: ErrorCode.CORRUPT_MESSAGE,
        errorMessage: expect.stringContaining(message),
      });
    }
    const offsets = await c.request(ApiKey.ListOffsets, 1, {
      replicaId: -1,
      topics: [{ name: 'liar', partitions: [{ partitionIndex: 0, timestamp: -1n }] }],
    });
    expect(offsets.topics[0].partitions[0].offset).toBe(0n);
    const honest = await c.request(ApiKey.Produce, 8, produceReq('liar', 0, buildBatch(two)));
    expect(honest.responses[0].partitionResponses[0]).toMatchObject({ errorCode: 0, baseOffset: 0n });
    c.close();
  });

  it('drops duplicate idempotent batches and rejects sequence gaps', async () => {
    const c = await RawClient.open(broker.port);
    await c.request(ApiKey.CreateTopics, 3, {
      topics: [{ name: 'idem-raw', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
      timeoutMs: 1000,
      validateOnly: false,
    });
    const init = await c.request(ApiKey.InitProducerId, 1, {
      transactionalId: null,
      transactionTimeoutMs: 0,
    });
    expect(init.errorCode).toBe(0);
    const pid = init.producerId as bigint;
    const batch = (seq: number, n: number) =>
      buildBatch(
        Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`s${seq + i}`) })),
        { producerId: pid, producerEpoch: 0, baseSequence: seq },
      );
    const send = async (b: Buffer) =>
      (await c.request(ApiKey.Produce, 8, produceReq('idem-raw', 0, b))).responses[0].partitionResponses[0];
    expect(await send(batch(0, 3))).toMatchObject({ errorCode: 0, baseOffset: 0n });
    expect(await send(batch(3, 2))).toMatchObject({ errorCode: 0, baseOffset: 3n });
    expect(await send(batch(3, 2))).toMatchObject({ errorCode: 0, baseOffset: 3n });
    expect(await send(batch(0, 3))).toMatchObject({ errorCode: 0, baseOffset: 0n });
    expect(await send(batch(9, 1))).toMatchObject({ errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER });
    expect(await send(batch(5, 1))).toMatchObject({ errorCode: 0, baseOffset: 5n });
    const offsets = await c.request(ApiKey.ListOffsets, 1, {
      replicaId: -1,
      topics: [{ name: 'idem-raw', partitions: [{ partitionIndex: 0, timestamp: -1n }] }],
    });
    expect(offsets.topics[0].partitions[0].offset).toBe(6n);
    c.close();
  });

  it('stores large produce requests that arrive cut at any byte, back to back on one connection, intact', async () => {
    const c = await RawClient.open(broker.port);
    await c.request(ApiKey.CreateTopics, 3, {
      topics: [{ name: 'big', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
      timeoutMs: 1000,
      validateOnly: false,
    });
    c.close();
    const values = Array.from({ length: 3 }, (_, r) =>
      Array.from({ length: 300 }, (_, i) => randomBytes(100 + ((r * 300 + i) % 900))),
    );
    const frames = values.map((vs, r) => {
      const w = new Writer();
      writeStruct(
        w,
        API_SPECS.get(ApiKey.Produce)!.request,
        produceReq('big', 0, buildBatch(vs.map((value) => ({ value })))),
        8,
      );
      return RawClient.frame(ApiKey.Produce, 8, 100 + r, Buffer.from(w.finish()));
    });
    const stream = Buffer.concat(frames);
    const socket = connect({ host: '127.0.0.1', port: broker.port });
    await new Promise((resolve) => socket.once('connect', resolve));
    let answered = Buffer.alloc(0);
    socket.on('data', (d) => (answered = Buffer.concat([answered, d])));
    // Pieces of odd sizes, each written on its own turn of the event loop: frame boundaries and
    // size prefixes fall inside pieces.
    for (let at = 0, i = 0; at < stream.length; i++) {
      const n = [1, 3, 7001, 65537, 2, 40000][i % 6];
      socket.write(stream.subarray(at, at + n));
      at += n;
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => answered.length > 0 && countFrames(answered) === 3, {
      timeout: 10_000,
      reason: 'three produce responses',
    });
    socket.destroy();
    const log = broker.server.state.topics.partition('big', 0)!;
    const stored: string[] = [];
    while (BigInt(stored.length) < log.highWatermark)
      stored.push(...decodeRecords(log.read(BigInt(stored.length), 1)).map((r) => r.value!.toString('hex')));
    expect(stored).toEqual(values.flat().map((v) => v.toString('hex')));
  });

  it('long-polls a fetch until data arrives, and reports out-of-range offsets', async () => {
    const c = await RawClient.open(broker.port);
    const p = await RawClient.open(broker.port);
    await c.request(ApiKey.CreateTopics, 3, {
      topics: [{ name: 'poll', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
      timeoutMs: 1000,
      validateOnly: false,
    });
    const fetch = (offset: bigint, maxWaitMs: number) =>
      c.request(ApiKey.Fetch, 11, {
        replicaId: -1,
        maxWaitMs,
        minBytes: 1,
        maxBytes: 1 << 20,
        isolationLevel: 0,
        sessionId: 0,
        sessionEpoch: -1,
        topics: [
          {
            topic: 'poll',
            partitions: [
              {
                partition: 0,
                currentLeaderEpoch: -1,
                fetchOffset: offset,
                logStartOffset: -1n,
                partitionMaxBytes: 1 << 20,
              },
            ],
          },
        ],
        forgottenTopicsData: [],
        rackId: '',
      });
    const pending = fetch(0n, 10_000);
    const started = Date.now();
    await p.request(
      ApiKey.Produce,
      8,
      produceReq('poll', 0, buildBatch([{ value: Buffer.from('wake up') }])),
    );
    const res = await pending;
    expect(Date.now() - started).toBeLessThan(9_000);
    const part = res.responses[0].partitions[0];
    expect(part.errorCode).toBe(0);
    expect(part.highWatermark).toBe(1n);
    expect(part.records.length).toBeGreaterThan(61);
    const out = (await fetch(5n, 0)).responses[0].partitions[0];
    expect(out.errorCode).toBe(ErrorCode.OFFSET_OUT_OF_RANGE);
    expect(out.records).toEqual(Buffer.alloc(0));
    c.close();
    p.close();
  });

  it('leaves no state behind when a client disconnects mid-request', async () => {
    const c = await RawClient.open(broker.port);
    const full = RawClient.frame(ApiKey.CreateTopics, 3, 1, Buffer.alloc(100));
    void c.sendRaw(full.subarray(0, 30));
    c.close();
    const ok = await RawClient.open(broker.port);
    const meta = await ok.request(ApiKey.Metadata, 8, {
      topics: null,
      allowAutoTopicCreation: false,
      includeClusterAuthorizedOperations: false,
      includeTopicAuthorizedOperations: false,
    });
    expect(meta.topics.map((t: { name: string }) => t.name).sort()).toEqual([
      'big',
      'crc',
      'idem-raw',
      'liar',
      'poll',
    ]);
    ok.close();
  });
});

describe('broker limits and back-pressure', () => {
  let broker: Broker;
  const logged: string[] = [];
  beforeAll(async () => {
    broker = await startTestBroker(
      { maxConnections: 4, connectionIdleMs: 1500, maxFetchBytes: 1 << 20 },
      { warn: (_o, m) => void logged.push(m), info: () => undefined },
    );
  });
  afterAll(() => broker?.stop());

  const fetchReq = (topic: string, maxBytes: number) => ({
    replicaId: -1,
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [
      {
        topic,
        partitions: [
          {
            partition: 0,
            currentLeaderEpoch: -1,
            fetchOffset: 0n,
            logStartOffset: -1n,
            partitionMaxBytes: maxBytes,
          },
        ],
      },
    ],
    forgottenTopicsData: [],
    rackId: '',
  });

  it('stops reading a client that never reads its responses, instead of buffering them, and caps a fetch at maxFetchBytes', async () => {
    const c = await RawClient.open(broker.port);
    await c.request(ApiKey.CreateTopics, 3, {
      topics: [{ name: 'bp', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
      timeoutMs: 1000,
      validateOnly: false,
    });
    for (let i = 0; i < 16; i++)
      await c.request(
        ApiKey.Produce,
        8,
        produceReq('bp', 0, buildBatch([{ key: Buffer.from(`k${i}`), value: randomBytes(256 * 1024) }])),
      );
    // Asked for 16 MB, a fetch gets at most maxFetchBytes (1 MB) of batches.
    const capped = await c.request(ApiKey.Fetch, 11, fetchReq('bp', 16 << 20));
    const got = capped.responses[0].partitions[0].records as Buffer;
    expect(got.length).toBeGreaterThan(512 * 1024);
    expect(got.length).toBeLessThanOrEqual(1 << 20);
    c.close();

    // 200 fetches of ~1 MB each sent at once by a client that reads nothing back.
    const spec = API_SPECS.get(ApiKey.Fetch)!;
    const w = new Writer();
    writeStruct(w, spec.request, fetchReq('bp', 1 << 20), 11);
    const body = Buffer.from(w.finish());
    const greedy = connect({ host: '127.0.0.1', port: broker.port });
    await new Promise((r) => greedy.once('connect', r));
    greedy.pause();
    for (let i = 0; i < 200; i++) greedy.write(RawClient.frame(ApiKey.Fetch, 11, i + 1, body));
    await new Promise((r) => setTimeout(r, 1500));
    const held = broker.server.connections();
    const out = Math.max(...held.map((h) => h.bufferedOut));
    // Without back-pressure the broker holds ~200 MB of responses for it; with it, about one.
    expect(out).toBeGreaterThan(0);
    expect(out).toBeLessThan(4 << 20);
    expect(Math.max(...held.map((h) => h.bufferedIn))).toBeLessThan(1 << 20);
    // Reading resumes the flow: every response arrives, in order.
    // Frames counted as they stream by (without keeping 200 MB): the bytes left of the current
    // one, and the size prefix of the next while it is incomplete.
    let count = 0;
    let left = 0;
    let prefix = Buffer.alloc(0);
    greedy.on('data', (d: Buffer) => {
      let at = 0;
      while (at < d.length) {
        if (left > 0) {
          const n = Math.min(left, d.length - at);
          left -= n;
          at += n;
          if (left === 0) count++;
          continue;
        }
        const take = Math.min(4 - prefix.length, d.length - at);
        prefix = Buffer.concat([prefix, d.subarray(at, at + take)]);
        at += take;
        if (prefix.length === 4) {
          left = prefix.readInt32BE(0);
          prefix = Buffer.alloc(0);
        }
      }
    });
    greedy.resume();
    await waitFor(() => count, { reason: '200 fetch responses', until: (n) => n === 200, timeout: 30_000 });
    greedy.destroy();
  });

  it('refuses connections over maxConnections with a warning, and closes idle ones', async () => {
    await waitFor(() => broker.server.connections().length, {
      reason: 'the earlier connections gone',
      until: (n) => n === 0,
      timeout: 5000,
    });
    const open = await Promise.all([1, 2, 3, 4].map(() => RawClient.open(broker.port)));
    try {
      const extra = await RawClient.open(broker.port);
      await waitFor(() => extra.isClosed, {
        reason: 'the fifth connection closed',
        until: (x) => x,
        timeout: 5000,
      });
      expect(logged).toContain('refusing a connection: 4 connections are open (maxConnections)');
      // The four open ones work, then close once idle for connectionIdleMs.
      const meta = await open[0].request(ApiKey.Metadata, 1, { topics: null });
      expect(meta.brokers).toHaveLength(1);
      await waitFor(() => open.every((o) => o.isClosed), {
        reason: 'idle connections closed',
        until: (x) => x,
        timeout: 10_000,
      });
    } finally {
      for (const o of open) o.close();
    }
  });
});
