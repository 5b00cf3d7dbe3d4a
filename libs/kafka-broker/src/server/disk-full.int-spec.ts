import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiKey, buildBatch, decodeRecords, ErrorCode } from '@pgferry/kafka-protocol';
import { KafkaServer } from './kafka-server';
import { RawClient } from '../test/raw-client';

type Req = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** A tmpfs needs root (CI runs as root, as it installs packages): elsewhere this suite is skipped. */
const asRoot = process.getuid?.() === 0;

const produce = (c: RawClient, i: number, value: Buffer) =>
  c.request(ApiKey.Produce, 8, {
    transactionalId: null,
    acks: -1,
    timeoutMs: 5000,
    topicData: [
      {
        name: 'full',
        partitionData: [{ index: 0, records: buildBatch([{ key: Buffer.from(`k${i}`), value }]) }],
      },
    ],
  }) as Promise<Req>;

const fetchFrom = (c: RawClient, offset: bigint) =>
  c.request(ApiKey.Fetch, 11, {
    replicaId: -1,
    maxWaitMs: 0,
    minBytes: 0,
    maxBytes: 16 << 20,
    isolationLevel: 0,
    sessionId: 0,
    sessionEpoch: -1,
    topics: [
      {
        topic: 'full',
        partitions: [
          {
            partition: 0,
            currentLeaderEpoch: -1,
            fetchOffset: offset,
            logStartOffset: -1n,
            partitionMaxBytes: 16 << 20,
          },
        ],
      },
    ],
    forgottenTopicsData: [],
    rackId: '',
  }) as Promise<Req>;

(asRoot ? describe : describe.skip)('embedded broker on a full disk (a 3 MB tmpfs)', () => {
  let mount: string;
  beforeAll(() => {
    mount = mkdtempSync(join(tmpdir(), 'pgferry-full-disk-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m,mode=0700', 'tmpfs', mount]);
  });
  afterAll(() => {
    execFileSync('umount', [mount]);
    rmSync(mount, { recursive: true, force: true });
  });

  it('refuses produce with KAFKA_STORAGE_ERROR, loses no acknowledged record, says so once, and takes writes again once space is freed', async () => {
    const filler = join(mount, 'filler');
    writeFileSync(filler, Buffer.alloc(1024 * 1024));
    const dataDir = join(mount, 'data');
    const warnings: string[] = [];
    const log = { warn: (_: object, msg: string) => void warnings.push(msg), info: () => undefined };
    let server = await KafkaServer.start({ dataDir, port: 0 }, log);
    let c = await RawClient.open(server.port);
    await c.request(ApiKey.CreateTopics, 3, {
      topics: [{ name: 'full', numPartitions: 1, replicationFactor: 1, assignments: [], configs: [] }],
      timeoutMs: 1000,
      validateOnly: false,
    });
    const values: Buffer[] = [];
    const acked: number[] = [];
    const offsets: bigint[] = [];
    let refused: Req | null = null;
    for (let i = 0; i < 60 && !refused; i++) {
      values.push(Buffer.concat([Buffer.from(`record ${i} `), randomBytes(96 * 1024)]));
      const p = (await produce(c, i, values[i])).responses[0].partitionResponses[0];
      if (p.errorCode === ErrorCode.NONE) {
        offsets.push(p.baseOffset);
        acked.push(i);
      } else refused = p;
    }
    expect(offsets).toEqual(acked.map((_, n) => BigInt(n)));
    expect(acked.length).toBeGreaterThan(5);
    expect(refused).toMatchObject({
      errorCode: ErrorCode.KAFKA_STORAGE_ERROR,
      errorMessage: expect.stringMatching(/ENOSPC.*is full; free space there/),
    });
    // Retries while the disk stays full are refused the same way, and told once, not each time.
    const retried = acked.length;
    for (let k = 0; k < 3; k++) {
      const p = (await produce(c, retried, values[retried])).responses[0].partitionResponses[0];
      expect(p.errorCode).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
    }
    expect(warnings.filter((w) => /ENOSPC/.test(w))).toHaveLength(1);

    // Space freed: the refused record goes in right after the acknowledged ones.
    rmSync(filler);
    const again = (await produce(c, retried, values[retried])).responses[0].partitionResponses[0];
    expect(again).toMatchObject({ errorCode: ErrorCode.NONE, baseOffset: BigInt(acked.length) });
    acked.push(retried);

    // After a restart every acknowledged record reads back whole, in order, and nothing else.
    c.close();
    await server.close();
    server = await KafkaServer.start({ dataDir, port: 0 }, log);
    c = await RawClient.open(server.port);
    const read: Array<{ key: string; value: Buffer }> = [];
    while (read.length < acked.length + 1) {
      const part = (await fetchFrom(c, BigInt(read.length))).responses[0].partitions[0];
      expect(part.errorCode).toBe(ErrorCode.NONE);
      if (part.records.length === 0) break;
      for (const r of decodeRecords(part.records)) read.push({ key: r.key!.toString(), value: r.value! });
    }
    expect(read.map((r) => r.key)).toEqual(acked.map((i) => `k${i}`));
    expect(read.every((r, n) => r.value.equals(values[acked[n]]))).toBe(true);
    c.close();
    await server.close();
  });
});
