import { ProtocolError, Reader, Writer } from './buffer-io';
import { crc32c, DataError } from '@pgferry/core';
import { API_SPECS, ApiKey } from './messages';
import { checkProducedRecords, readBatchHeader, sealBatch, splitAndValidate } from './record-batch';
import { decodeRecords } from './record-batch-reader';
import { buildBatch } from './record-batch-writer';
import { readVarint, readVarlong, varintBytes, varlongBytes, writeVarint, writeVarlong } from './varint';
import { readStruct, writeStruct } from './schema-codec';

describe('crc32c', () => {
  it('matches the standard check value and the RFC 3720 vectors', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.alloc(32, 0))).toBe(0x8a9136aa);
    expect(crc32c(Buffer.alloc(32, 0xff))).toBe(0x62a8ab43);
    expect(crc32c(Buffer.from(Array.from({ length: 32 }, (_, i) => i)))).toBe(0x46dd794e);
  });
});

describe('varints', () => {
  it.each([
    [0, [0x00]],
    [-1, [0x01]],
    [1, [0x02]],
    [63, [0x7e]],
    [-64, [0x7f]],
    [64, [0x80, 0x01]],
    [300, [0xd8, 0x04]],
  ])('zig-zag %d', (value, bytes) => {
    const buf = Buffer.alloc(5);
    expect([...buf.subarray(0, writeVarint(buf, 0, value))]).toEqual(bytes);
    expect(varintBytes(value)).toBe(bytes.length);
    expect(readVarint({ buf: Buffer.from(bytes), pos: 0 })).toBe(value);
    expect([...buf.subarray(0, writeVarlong(buf, 0, BigInt(value)))]).toEqual(bytes);
  });

  it('round-trips varints at the int32 extremes and varlongs at the int64 extremes', () => {
    for (const v of [2 ** 31 - 1, -(2 ** 31), 2 ** 28, -(2 ** 28) - 1]) {
      const buf = Buffer.alloc(5);
      const end = writeVarint(buf, 0, v);
      expect(end).toBe(varintBytes(v));
      expect(readVarint({ buf, pos: 0 })).toBe(v);
    }
    for (const v of [0n, -1n, 9223372036854775807n, -9223372036854775808n, 1700000000000n]) {
      const buf = Buffer.alloc(10);
      const end = writeVarlong(buf, 0, v);
      expect(end).toBe(varlongBytes(v));
      expect(readVarlong({ buf, pos: 0 })).toBe(v);
    }
    // Kafka's ByteUtils: int64 max is ten bytes, all but the last with the continuation bit.
    const max = Buffer.alloc(10);
    writeVarlong(max, 0, 9223372036854775807n);
    expect([...max]).toEqual([0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
  });

  it.each([
    ['varint runs past the end', () => readVarint({ buf: Buffer.from([0x80, 0x80]), pos: 0 })],
    ['varint longer than 5 bytes', () => readVarint({ buf: Buffer.alloc(6, 0x80), pos: 0 })],
    ['varlong runs past the end', () => readVarlong({ buf: Buffer.from([0x80]), pos: 0 })],
    ['varlong longer than 10 bytes', () => readVarlong({ buf: Buffer.alloc(11, 0x80), pos: 0 })],
  ])('refuses a malformed one as bad data: %s', (message, read) => {
    expect(read).toThrow(DataError);
    expect(read).toThrow(message);
  });
});

describe('Writer with spliceFrom', () => {
  it('takes large buffers by reference and gives the same bytes as copying them', () => {
    const big = Buffer.alloc(5000, 7);
    const write = (w: Writer) => {
      w.int32(0).int32(42).nbytes(Buffer.from('small')).nbytes(big);
      for (let i = 0; i < 300; i++) w.int64(BigInt(i));
      w.nbytes(big).int16(-1);
    };
    const copied = new Writer(16);
    write(copied);
    const spliced = new Writer(16, 4096);
    write(spliced);
    const parts = spliced.finishParts();
    expect(parts.filter((p) => p === big)).toHaveLength(2);
    expect(spliced.length).toBe(copied.finish().length);
    expect(Buffer.concat(parts).equals(copied.finish())).toBe(true);
    expect(spliced.finish().equals(copied.finish())).toBe(true);
  });
});

describe('record batch v2', () => {
  it('lays out the header at the documented offsets, with a valid CRC', () => {
    const b = buildBatch([{ key: Buffer.from('k'), value: Buffer.from('v'), timestamp: 1000n }], {
      baseOffset: 42n,
      producerId: 7n,
      producerEpoch: 1,
      baseSequence: 5,
    });
    expect(b.readBigInt64BE(0)).toBe(42n);
    expect(b.readInt32BE(8)).toBe(b.length - 12);
    expect(b.readInt8(16)).toBe(2);
    expect(b.readUInt32BE(17)).toBe(crc32c(b, 21));
    expect(b.readBigInt64BE(43)).toBe(7n);
    expect(b.readInt16BE(51)).toBe(1);
    expect(b.readInt32BE(53)).toBe(5);
    expect(b.readInt32BE(57)).toBe(1);
    // Record: length 8 (zig-zag 16): attributes 0, ts delta 0, offset delta 0, key len 1 "k", value len 1 "v", 0 headers.
    expect([...b.subarray(61)]).toEqual([16, 0, 0, 0, 2, 0x6b, 2, 0x76, 0]);
  });

  it('decodes what it builds, gzip and lz4 included, with offsets and headers', () => {
    for (const compression of ['none', 'gzip', 'lz4'] as const) {
      const recs = [
        {
          offset: 10n,
          timestamp: 5000n,
          key: Buffer.from('a'),
          value: Buffer.from('1'),
          headers: [{ key: 'h', value: Buffer.from('x') }],
        },
        { offset: 12n, timestamp: 5007n, key: null, value: null, headers: [] },
      ];
      const b = buildBatch(recs, { compression });
      expect(readBatchHeader(b)).toMatchObject({
        baseOffset: 10n,
        lastOffsetDelta: 2,
        recordCount: 2,
        maxTimestamp: 5007n,
        compression: { none: 0, gzip: 1, lz4: 3 }[compression],
      });
      expect(decodeRecords(b)).toEqual(recs);
    }
  });

  it('rejects a flipped byte, a wrong magic and a truncated batch', () => {
    const good = buildBatch([{ value: Buffer.from('payload') }]);
    expect(splitAndValidate(good)).toHaveLength(1);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 2] ^= 1;
    expect(() => splitAndValidate(flipped)).toThrow(/CRC mismatch/);
    const v1 = Buffer.from(good);
    v1.writeInt8(1, 16);
    expect(() => splitAndValidate(v1)).toThrow('record batch magic 1 is not supported (only v2)');
    expect(() => splitAndValidate(good.subarray(0, good.length - 1))).toThrow(
      'record batch length exceeds the request',
    );
  });
});

describe('checkProducedRecords', () => {
  const three = [1, 2, 3].map((i) => ({ value: Buffer.from(`value ${i}`) }));
  const check = (b: Buffer) => checkProducedRecords(b, 0, readBatchHeader(b));
  /** The batch with its header's count and last offset delta set to `count`, CRC re-sealed. */
  const claiming = (b: Buffer, count: number) => {
    const lie = Buffer.from(b);
    lie.writeInt32BE(count, 57);
    lie.writeInt32BE(count - 1, 23);
    sealBatch(lie, 0, lie.length);
    return lie;
  };

  it('passes batches as producers write them, compressed or not', () => {
    for (const compression of ['none', 'gzip', 'lz4'] as const)
      expect(() => check(buildBatch(three, { compression }))).not.toThrow();
  });

  it('refuses a header that claims more or fewer records than the batch holds, even with a valid CRC', () => {
    const good = buildBatch(three);
    expect(() => check(claiming(good, 5))).toThrow('record batch header says 5 records, but it holds 3');
    expect(() => check(claiming(good, 2))).toThrow(
      /record batch header says 2 records, but \d+ bytes follow its last record/,
    );
    const lz4 = buildBatch(three, { compression: 'lz4' });
    expect(() => check(claiming(lz4, 4))).toThrow('record batch header says 4 records, but it holds 3');
  });

  it('refuses offset deltas that are not 0..count-1 and a last offset delta that skips offsets', () => {
    const gaps = buildBatch(
      three.map((r, i) => ({ ...r, offset: BigInt(i * 2) })),
      { lastOffsetDelta: 2 },
    );
    expect(() => check(gaps)).toThrow('record batch header says 3 records, but record 1 has offset delta 2');
    const skips = Buffer.from(buildBatch(three));
    skips.writeInt32BE(7, 23);
    sealBatch(skips, 0, skips.length);
    expect(() => check(skips)).toThrow('record batch has 3 records but lastOffsetDelta 7');
  });
});

describe('message codec', () => {
  it('encodes Metadata v1 request bytes as Kafka does (null topics = all)', () => {
    const w = new Writer();
    writeStruct(w, API_SPECS.get(ApiKey.Metadata)!.request, { topics: null }, 1);
    expect([...w.finish()]).toEqual([0xff, 0xff, 0xff, 0xff]);
  });

  it('skips fields outside the version and round-trips the rest', () => {
    const spec = API_SPECS.get(ApiKey.JoinGroup)!;
    const req = {
      groupId: 'g',
      sessionTimeoutMs: 10,
      rebalanceTimeoutMs: 20,
      memberId: '',
      groupInstanceId: 'i',
      protocolType: 'consumer',
      protocols: [{ name: 'range', metadata: Buffer.from([1]) }],
    };
    const v0 = new Writer();
    writeStruct(v0, spec.request, req, 0);
    const back = readStruct<typeof req>(new Reader(v0.finish()), spec.request, 0);
    expect(back).toEqual({ ...req, rebalanceTimeoutMs: 0, groupInstanceId: null });
    const v5 = new Writer();
    writeStruct(v5, spec.request, req, 5);
    expect(readStruct(new Reader(v5.finish()), spec.request, 5)).toEqual(req);
  });

  it('throws on a truncated request instead of reading garbage', () => {
    expect(() =>
      readStruct(new Reader(Buffer.from([0, 5, 0x61])), API_SPECS.get(ApiKey.FindCoordinator)!.request, 0),
    ).toThrow(/truncated/);
  });

  it('refuses an array longer than the bytes left, as a message that does not parse', () => {
    // A Metadata v0 request is one array of topic names.
    const w = new Writer();
    w.int32(1_000_000).string('t');
    const read = () => readStruct(new Reader(w.finish()), API_SPECS.get(ApiKey.Metadata)!.request, 0);
    expect(read).toThrow(ProtocolError);
    expect(read).toThrow("array length 1000000 exceeds the message's 3 bytes left");
  });
});
