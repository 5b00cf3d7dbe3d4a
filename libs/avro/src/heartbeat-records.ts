import avro from 'avsc';
import { DataError } from '@pgferry/core';
import type { RegistryClient } from './registry-client';
import { RegisteredSchemas } from './transaction-records';
import { requireWireSchemaId, WIRE_HEADER_BYTES } from './confluent-wire';

/**
 * The heartbeat topic `<prefix>.heartbeat` (Debezium's heartbeat format): one record for every
 * beat of the task's heartbeat table that reaches the stream (about once a second), keyed by the
 * server name (the topic prefix), with the beat's commit time. A consumer sees that the stream is
 * alive and how far it has come even while the selected tables do not change.
 */
export const HEARTBEAT_KEY_SCHEMA = {
  type: 'record',
  name: 'ServerNameKey',
  namespace: 'io.debezium.connector.common',
  fields: [{ name: 'serverName', type: 'string' }],
} as const;

export const HEARTBEAT_VALUE_SCHEMA = {
  type: 'record',
  name: 'Heartbeat',
  namespace: 'io.debezium.connector.common',
  fields: [{ name: 'ts_ms', type: 'long' }],
} as const;

const valueType = avro.Type.forSchema(HEARTBEAT_VALUE_SCHEMA as unknown as avro.Schema);

export class HeartbeatRecords {
  private readonly schemas: RegisteredSchemas;
  private key: Buffer | null = null;

  constructor(
    registry: RegistryClient,
    topic: string,
    private readonly serverName: string,
  ) {
    this.schemas = new RegisteredSchemas(registry, topic, {
      key: HEARTBEAT_KEY_SCHEMA,
      value: HEARTBEAT_VALUE_SCHEMA,
    });
  }

  /** Registers the schemas (once). */
  async ready(): Promise<void> {
    await this.schemas.ready();
    this.key ??= this.schemas.key({ serverName: this.serverName });
  }

  encode(tsMs: number): { key: Buffer; value: Buffer } {
    if (!this.key) throw new Error('HeartbeatRecords.ready() must resolve before encode');
    return { key: this.key, value: this.schemas.value({ ts_ms: tsMs }) };
  }
}

/** A record of the heartbeat topic, decoded (for consumers and tests). */
export function decodeHeartbeatRecord(value: Buffer): { ts_ms: number } {
  const id = requireWireSchemaId(value);
  try {
    return valueType.fromBuffer(value.subarray(WIRE_HEADER_BYTES)) as { ts_ms: number };
  } catch (err) {
    throw new DataError(
      `heartbeat record (schema ${id}) does not decode (${(err as Error).message}): the record is corrupt, or was not written by pgferry's capture`,
      { cause: err },
    );
  }
}
