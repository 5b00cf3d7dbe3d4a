import { TransientError } from '@pgferry/core';
import type { Queryable } from './control-schema';

/**
 * pgferry.offsets: the next Kafka offset each consumer group applied per partition, with the
 * stream position of the last change. Written only inside the destination transaction that
 * applied the records, so a restarted applier resumes exactly where the last commit ended.
 */
/** The next offset to consume per partition of `topics`, as stored with the applied rows. */
export async function readOffsets(
  client: Queryable,
  group: string,
  topics: string[],
): Promise<Map<string, bigint>> {
  const { rows } = await client.query(
    `SELECT topic, partition, next_offset FROM pgferry.offsets WHERE consumer_group = $1 AND topic = ANY($2::text[])`,
    [group, topics],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, BigInt(r.next_offset)]));
}

/**
 * Every partition `group` applied, in topic and partition order, with when its offset last
 * moved: for status reports and for waiting until the applier reached given offsets.
 */
export async function readGroupOffsets(
  client: Queryable,
  group: string,
): Promise<Array<{ topic: string; partition: number; nextOffset: bigint; updatedAt: Date }>> {
  const { rows } = await client.query(
    `SELECT topic, partition, next_offset::text AS next_offset, updated_at FROM pgferry.offsets WHERE consumer_group = $1 ORDER BY topic, partition`,
    [group],
  );
  return rows.map((r) => ({
    topic: r.topic as string,
    partition: Number(r.partition),
    nextOffset: BigInt(r.next_offset),
    updatedAt: r.updated_at as Date,
  }));
}

/**
 * Must run inside the transaction that applied the records below `nextOffset`. `streamPos`, when
 * given, is the stream position of the last change among them (kept otherwise).
 */
export async function storeOffset(
  client: Queryable,
  group: string,
  topic: string,
  partition: number,
  nextOffset: bigint,
  streamPos?: Buffer | null,
): Promise<void> {
  await client.query(
    `INSERT INTO pgferry.offsets (consumer_group, topic, partition, next_offset, stream_pos) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
       stream_pos = coalesce(EXCLUDED.stream_pos, pgferry.offsets.stream_pos), updated_at = now()`,
    [group, topic, partition, nextOffset.toString(), streamPos ?? null],
  );
}

/** What a batch leaves in pgferry.offsets, and (fenced) what it expects to find there. */
export interface OffsetUpdate {
  topic: string;
  partition: number;
  nextOffset: bigint;
  streamPos?: Buffer | null;
  /**
   * The next offset this applier believes is stored (0 for a partition never applied): with
   * it, the update is a compare-and-set and fails with OffsetFenceError when another applier of
   * the group moved the partition on meanwhile (appliers scaled out, during a rebalance).
   */
  expected?: bigint;
}

/**
 * Another applier of the group committed this partition first: the transaction must roll back
 * (its rows would be applied twice). Retriable: a new applier reads the stored offsets again.
 */
export class OffsetFenceError extends TransientError {
  constructor(group: string, partitions: string[]) {
    super(
      `consumer group ${group}: another applier committed ${partitions.join(', ')} first (the group rebalanced); this batch was rolled back and is applied from the stored offset`,
      { code: 'OFFSET_FENCE' },
    );
  }
}

/**
 * storeOffset for several partitions in one statement (one round trip); must run inside the
 * transaction that applied the records. With `expected` on every update it is a compare-and-set:
 * the row lock taken by the update orders two appliers of one partition, and the one that finds
 * the offset moved on gets OffsetFenceError.
 */
export async function storeOffsets(
  client: Queryable,
  group: string,
  marks: ReadonlyArray<OffsetUpdate>,
): Promise<void> {
  if (!marks.length) return;
  const args = [
    group,
    marks.map((m) => m.topic),
    marks.map((m) => m.partition),
    marks.map((m) => m.nextOffset.toString()),
    marks.map((m) => m.streamPos ?? null),
  ];
  if (marks.some((m) => m.expected === undefined)) {
    await client.query(
      `INSERT INTO pgferry.offsets (consumer_group, topic, partition, next_offset, stream_pos)
       SELECT $1, u.topic, u.partition, u.next_offset, u.stream_pos
         FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[]) AS u(topic, partition, next_offset, stream_pos)
       ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset,
         stream_pos = coalesce(EXCLUDED.stream_pos, pgferry.offsets.stream_pos), updated_at = now()`,
      args,
    );
    return;
  }
  const { rows } = await client
    .query(
      `WITH u AS (SELECT * FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[], $6::bigint[])
                  AS u(topic, partition, next_offset, stream_pos, expected)),
          upd AS (UPDATE pgferry.offsets o SET next_offset = u.next_offset,
                         stream_pos = coalesce(u.stream_pos, o.stream_pos), updated_at = now()
                    FROM u
                   WHERE o.consumer_group = $1 AND o.topic = u.topic AND o.partition = u.partition
                     AND o.next_offset = u.expected
               RETURNING o.topic, o.partition),
          ins AS (INSERT INTO pgferry.offsets (consumer_group, topic, partition, next_offset, stream_pos)
                  SELECT $1, u.topic, u.partition, u.next_offset, u.stream_pos FROM u
                   WHERE u.expected = 0 AND NOT EXISTS (SELECT 1 FROM pgferry.offsets o
                         WHERE o.consumer_group = $1 AND o.topic = u.topic AND o.partition = u.partition)
               RETURNING topic, partition)
     SELECT u.topic, u.partition FROM u
      WHERE NOT EXISTS (SELECT 1 FROM upd WHERE upd.topic = u.topic AND upd.partition = u.partition)
        AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.topic = u.topic AND ins.partition = u.partition)`,
      [...args, marks.map((m) => m.expected!.toString())],
    )
    .catch((err) => {
      // Two appliers inserting a partition's first offset: the second one's insert conflicts.
      if ((err as { code?: string }).code === '23505')
        throw new OffsetFenceError(
          group,
          marks.map((m) => `${m.topic}:${m.partition}`),
        );
      throw err;
    });
  if (rows.length)
    throw new OffsetFenceError(
      group,
      rows.map((r) => `${r.topic}:${r.partition}`),
    );
}

/** The stream position of the last change applied per "topic:partition" (see storeOffset). */
export async function readStreamPositions(
  client: Queryable,
  group: string,
  topics: string[],
): Promise<Map<string, Buffer>> {
  const { rows } = await client.query(
    `SELECT topic, partition, stream_pos FROM pgferry.offsets
      WHERE consumer_group = $1 AND topic = ANY($2::text[]) AND stream_pos IS NOT NULL`,
    [group, topics],
  );
  return new Map(rows.map((r) => [`${r.topic}:${r.partition}`, r.stream_pos as Buffer]));
}

/** Where a batch leaves a partition: stored with the batch, in the same destination transaction. */
export interface OffsetMark {
  group: string;
  topic: string;
  partition: number;
  /** The offset after the last record of the batch. */
  nextOffset: bigint;
  /**
   * The stream position (see streamPosition) of the last change applied in this partition,
   * when the batch had any: a change sent again after a capture restart is recognised by it.
   */
  streamPos?: Buffer | null;
  /** The next offset the applier expects stored (see OffsetUpdate.expected): fences scaled-out appliers. */
  expected?: bigint;
}
