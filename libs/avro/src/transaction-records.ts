import avro from 'avsc';
import { DataError } from '@pgferry/core';
import type { RegistryClient } from './registry-client';
import type { Lsn } from '@pgferry/pg';
import { requireWireSchemaId, wire, WIRE_HEADER_BYTES } from './confluent-wire';

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

  private registered(): { key: number; value: number } {
    if (!this.ids)
      throw new Error(`the schemas of ${this.topic} must be registered (ready()) before encoding`);
    return this.ids;
  }
}

export class TransactionRecords {
  private readonly schemas: RegisteredSchemas;

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

  /** `counts`: "<schema>.<table>" -> events of the transaction; absent for BEGIN. */
  encode(
    status: 'BEGIN' | 'END',
    id: string,
    tsMs: number,
    counts?: ReadonlyMap<string, number>,
  ): { key: Buffer; value: Buffer } {
    const total = counts ? [...counts.values()].reduce((a, b) => a + b, 0) : null;
    return {
      key: this.schemas.key({ id }),
      value: this.schemas.value({
        status,
        id,
        event_count: total,
        data_collections: counts
          ? [...counts].map(([data_collection, event_count]) => ({ data_collection, event_count }))
          : null,
        ts_ms: tsMs,
      }),
    };
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
