/** One record of the `_schemas` log: Confluent's JSON key and value, or a null value (a tombstone). */
export interface SchemaLogRecord {
  key: Buffer;
  value: Buffer | null;
}

/**
 * Where the registry keeps its state: the compacted `_schemas` topic in the broker, or memory in
 * tests. The registry holds no other state; everything it answers is the fold of these records.
 *
 * Contract:
 * - `load()` returns every record still held, in log order (the order `append` was called in).
 *   Compaction may have dropped a record whose key was written again later, never the last one
 *   for a key.
 * - `append()` resolves only once the record is durable (for Kafka: acknowledged by the broker)
 *   and is ordered after every append that resolved before it was called. The registry calls it
 *   one record at a time, waiting for each, so implementations need not order concurrent calls.
 * - A rejected `append()` means the record may or may not be stored; the registry then reports a
 *   retriable store error and does not apply the record to its state.
 */
export interface SchemaLog {
  load(): Promise<SchemaLogRecord[]>;
  append(key: Buffer, value: Buffer | null): Promise<void>;
}

/**
 * A SchemaLog in memory, for tests and for an embedded registry that need not survive the process.
 * It does not compact: `load()` returns every record ever appended, tombstones included. The
 * records are copied in and out, so callers cannot change what was stored.
 */
export class InMemorySchemaLog implements SchemaLog {
  private readonly records: SchemaLogRecord[] = [];

  async load(): Promise<SchemaLogRecord[]> {
    return this.records.map((r) => ({ key: Buffer.from(r.key), value: r.value && Buffer.from(r.value) }));
  }

  async append(key: Buffer, value: Buffer | null): Promise<void> {
    this.records.push({ key: Buffer.from(key), value: value && Buffer.from(value) });
  }

  /** How many records were appended; lets tests check that a request wrote nothing. */
  get size(): number {
    return this.records.length;
  }
}
