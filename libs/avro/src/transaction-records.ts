import avro from 'avsc';
import { DataError } from '@pgferry/core';
import type { RegistryClient } from './registry-client';
import type { Lsn } from '@pgferry/pg';
import { AvroSlab } from './avro-slab';
import { requireWireSchemaId, wire, WIRE_HEADER_BYTES, writeWireHeader } from './confluent-wire';

/**
 * The transaction metadata topic `<prefix>.transactions` (Debezium's format): a BEGIN record
 * when a source transaction starts touching the selected tables and an END record with its
 * per-table event counts after its last change, keyed by the transaction id `<xid>:<commit
 * LSN>` that every change record of it carries in `transaction.id`. A consumer that wants whole
 * transactions buffers a table's changes until the END says how many there are.
 */
export const TRANSACTION_KEY_SCHEMA = {
  type: 'record',
  name: 'TransactionMetadataKey',
  namespace: 'io.debezium.connector.common',
  fields: [{ name: 'id', type: 'string' }],
} as const;

export const TRANSACTION_VALUE_SCHEMA = {
  type: 'record',
  name: 'TransactionMetadataValue',
  namespace: 'io.debezium.connector.common',
  fields: [
    { name: 'status', type: 'string' },
    { name: 'id', type: 'string' },
    { name: 'event_count', type: ['null', 'long'], default: null },
    {
      name: 'data_collections',
      type: [
        'null',
        {
          type: 'array',
          items: {
            type: 'record',
            name: 'ConnectDefault',
            namespace: 'io.confluent.connect.avro',
            fields: [
              { name: 'data_collection', type: 'string' },
              { name: 'event_count', type: 'long' },
            ],
          },
        },
      ],
      default: null,
    },
    { name: 'ts_ms', type: 'long' },
  ],
} as const;

const valueType = avro.Type.forSchema(TRANSACTION_VALUE_SCHEMA as unknown as avro.Schema);

export function transactionId(xid: number, commitLsn: Lsn): string {
  return `${xid}:${commitLsn}`;
}

/**
 * A topic's key and value schemas, registered once (subjects `<topic>-key`, `<topic>-value`),
 * and records encoded with them in the Confluent wire format.
 */
export class RegisteredSchemas {
  private readonly keyType: avro.Type;
  private readonly valueType: avro.Type;
  private ids: { key: number; value: number } | null = null;

  constructor(
    private readonly registry: RegistryClient,
    private readonly topic: string,
    private readonly schemas: { key: object; value: object },
  ) {
    this.keyType = avro.Type.forSchema(schemas.key as avro.Schema);
    this.valueType = avro.Type.forSchema(schemas.value as avro.Schema);
  }

  async ready(): Promise<void> {
    this.ids ??= {
      key: await this.registry.register(`${this.topic}-key`, this.schemas.key as never),
      value: await this.registry.register(`${this.topic}-value`, this.schemas.value as never),
    };
  }

  key(record: unknown): Buffer {
    return wire(this.registered().key, this.keyType.toBuffer(record));
  }

  value(record: unknown): Buffer {
    return wire(this.registered().value, this.valueType.toBuffer(record));
  }

  /** The registered schema ids; throws before `ready`. */
  registered(): { key: number; value: number } {
    if (!this.ids)
      throw new Error(`the schemas of ${this.topic} must be registered (ready()) before encoding`);
    return this.ids;
  }
}

/**
 * A transaction record's key and value in the wire format, written by hand into `out` (views of
 * it): the capture writes a BEGIN and an END for every source transaction, and avsc's generic
 * writer (an object, a union lookup and a Buffer per record) was a twelfth of the capture's CPU
 * under pgbench. The bytes are avsc's for TRANSACTION_*_SCHEMA (transaction-records.spec.ts).
 */
export function writeTransactionRecord(
  out: AvroSlab,
  ids: { key: number; value: number },
  status: 'BEGIN' | 'END',
  id: string,
  tsMs: number,
  counts?: ReadonlyMap<string, number>,
): { key: Buffer; value: Buffer } {
  out.begin();
  out.ensure(WIRE_HEADER_BYTES);
  out.pos = writeWireHeader(out.buf, out.pos, ids.key);
  out.string(id);
  const key = out.end();
  out.begin();
  out.ensure(WIRE_HEADER_BYTES);
  out.pos = writeWireHeader(out.buf, out.pos, ids.value);
  out.string(status);
  out.string(id);
  if (counts) {
    let total = 0;
    for (const n of counts.values()) total += n;
    // event_count and data_collections: branch 1 of [null, ...] is zigzag 2.
    out.byte(2);
    out.long(total);
    out.byte(2);
    // An array is written as blocks: a count, the items, then an empty block.
    if (counts.size) {
      out.long(counts.size);
      for (const [name, n] of counts) {
        out.string(name);
        out.long(n);
      }
    }
    out.byte(0);
  } else {
    out.byte(0);
    out.byte(0);
  }
  out.long(tsMs);
  return { key, value: out.end() };
}

export class TransactionRecords {
  private readonly schemas: RegisteredSchemas;
  private readonly out = new AvroSlab(64 * 1024);

  constructor(registry: RegistryClient, topic: string) {
    this.schemas = new RegisteredSchemas(registry, topic, {
      key: TRANSACTION_KEY_SCHEMA,
      value: TRANSACTION_VALUE_SCHEMA,
    });
  }

  /** Registers the schemas (once). */
  ready(): Promise<void> {
    return this.schemas.ready();
  }

  /**
   * `counts`: "<schema>.<table>" -> events of the transaction; absent for BEGIN. Key and value
   * are views of a shared slab that is never written again (see AvroSlab).
   */
  encode(
    status: 'BEGIN' | 'END',
    id: string,
    tsMs: number,
    counts?: ReadonlyMap<string, number>,
  ): { key: Buffer; value: Buffer } {
    return writeTransactionRecord(this.out, this.schemas.registered(), status, id, tsMs, counts);
  }
}

/** A record of the transaction topic, decoded (for consumers and tests). */
export interface TransactionRecord {
  status: 'BEGIN' | 'END';
  id: string;
  event_count: number | null;
  data_collections: Array<{ data_collection: string; event_count: number }> | null;
  ts_ms: number;
}

/** Bytes that are not a transaction record are a DataError; the caller names topic and offset. */
export function decodeTransactionRecord(value: Buffer): TransactionRecord {
  const id = requireWireSchemaId(value);
  try {
    return valueType.fromBuffer(value.subarray(WIRE_HEADER_BYTES)) as TransactionRecord;
  } catch (err) {
    throw new DataError(
      `transaction record (schema ${id}) does not decode (${(err as Error).message}): the record is corrupt, or was not written by pgferry's capture`,
      { cause: err },
    );
  }
}
