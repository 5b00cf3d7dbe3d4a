import { Reader, Writer } from './buffer-io';
import { decodeResponseBody, encodeRequestFrame, encodeResponseFrame, responseCorrelationId } from './frames';
import { API_SPECS, ApiKey } from './messages';
import { readStruct, writeStruct } from './schema-codec';
import { buildBatch } from './record-batch-writer';
import type { FetchResponse, ProduceRequest } from './api-types';

const hex = (parts: Buffer[]) => Buffer.concat(parts).toString('hex');

describe('request frames', () => {
  it('frames ApiVersions v0 as Kafka does: size, api key, version, correlation id, client id', () => {
    // 00000010 size 16 | 0012 ApiVersions | 0000 v0 | 0000002a correlation 42 | 0006 "client"
    expect(hex(encodeRequestFrame(ApiKey.ApiVersions, 0, 42, 'client', {}))).toBe(
      '00000010' + '0012' + '0000' + '0000002a' + '0006' + Buffer.from('client').toString('hex'),
    );
  });

  it('frames Metadata v1 with a null client id and a null topic list (all topics)', () => {
    expect(hex(encodeRequestFrame(ApiKey.Metadata, 1, 1, null, { topics: null }))).toBe(
      '0000000e' + '0003' + '0001' + '00000001' + 'ffff' + 'ffffffff',
    );
  });

  it('writes a Produce request the broker reads back, record batches by reference', () => {
    const batch = buildBatch(
      Array.from({ length: 200 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(40, i) })),
    );
    expect(batch.length).toBeGreaterThan(4096);
    const header = batch.subarray(0, 61);
    const records = batch.subarray(61);
    const body: ProduceRequest = {
      transactionalId: null,
      acks: -1,
      timeoutMs: 30_000,
      topicData: [
        {
          name: 'pgferry.public.tëst',
          partitionData: [
            { index: 2, records: batch },
            { index: 0, records: [header, records] },
          ],
        },
      ],
    };
    for (const version of [3, 5, 7, 8]) {
      const parts = encodeRequestFrame(ApiKey.Produce, version, 7, 'pgferry', body);
      expect(parts).toContain(batch);
      const frame = Buffer.concat(parts);
      const r = new Reader(frame);
      expect(r.int32()).toBe(frame.length - 4);
      expect([r.int16(), r.int16(), r.int32(), r.nstring()]).toEqual([ApiKey.Produce, version, 7, 'pgferry']);
      const req = readStruct<ProduceRequest>(r, API_SPECS.get(ApiKey.Produce)!.request, version);
      expect(r.remaining()).toBe(0);
      const [a, b] = req.topicData[0].partitionData;
      expect([a.index, b.index]).toEqual([2, 0]);
      expect((a.records as Buffer).equals(batch) && (b.records as Buffer).equals(batch)).toBe(true);
    }
  });
});

describe('response frames', () => {
  it('reads a Fetch v4 response from its bytes, records as a view of the frame', () => {
    const records = buildBatch([{ offset: 5n, value: Buffer.from('row') }]);
    const w = new Writer();
    w.int32(9); // correlation id
    w.int32(0); // throttle
    w.int32(1).string('t'); // one topic
    w.int32(1); // one partition
    w.int32(0).int16(0).int64(7n).int64(7n); // index, error, high watermark, last stable offset
    w.int32(1).int64(9n).int64(3n); // one aborted transaction
    w.nbytes(records);
    const payload = Buffer.from(w.finish());
    expect(responseCorrelationId(payload)).toBe(9);
    const res = decodeResponseBody<FetchResponse>(ApiKey.Fetch, 4, payload);
    const p = res.responses[0].partitions[0];
    expect(p).toMatchObject({ partitionIndex: 0, errorCode: 0, highWatermark: 7n });
    expect(p.abortedTransactions).toEqual([{ producerId: 9n, firstOffset: 3n }]);
    expect(p.records!.equals(records)).toBe(true);
    expect(p.records!.buffer).toBe(payload.buffer);
  });

  it('refuses a response longer than its layout (the sides disagree on the version)', () => {
    const w = new Writer();
    w.int32(1).int16(0).int32(0).int32(0).int32(99);
    expect(() => decodeResponseBody(ApiKey.ApiVersions, 1, Buffer.from(w.finish()))).toThrow(
      'ApiVersions v1 response has 4 bytes more than its layout',
    );
  });

  it('frames what the broker answers as the client reads it', () => {
    const spec = API_SPECS.get(ApiKey.InitProducerId)!;
    const body = { throttleTimeMs: 0, errorCode: 0, producerId: 4000n, producerEpoch: 2 };
    const frame = Buffer.concat(encodeResponseFrame(77, (w) => writeStruct(w, spec.response, body, 1)));
    expect(frame.readInt32BE(0)).toBe(frame.length - 4);
    expect(decodeResponseBody(ApiKey.InitProducerId, 1, frame.subarray(4))).toEqual(body);
  });
});
