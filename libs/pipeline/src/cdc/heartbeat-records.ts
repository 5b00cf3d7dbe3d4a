import avro from 'avsc';
import type { RegistryClient } from '../codec/registry-client';
import { wire } from '../codec/table-codec';

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

const keyType = avro.Type.forSchema(HEARTBEAT_KEY_SCHEMA as unknown as avro.Schema);
const valueType = avro.Type.forSchema(HEARTBEAT_VALUE_SCHEMA as unknown as avro.Schema);

export class HeartbeatRecords {
  private ids: { key: number; value: number } | null = null;
  private key: Buffer | null = null;

  constructor(
    private readonly registry: RegistryClient,
    private readonly topic: string,
    private readonly serverName: string,
  ) {}

  /** Registers the schemas (once). */
  async ready(): Promise<void> {
    if (this.ids) return;
    this.ids = {
      key: await this.registry.register(`${this.topic}-key`, HEARTBEAT_KEY_SCHEMA as never),
      value: await this.registry.register(`${this.topic}-value`, HEARTBEAT_VALUE_SCHEMA as never),
    };
    this.key = wire(this.ids.key, keyType.toBuffer({ serverName: this.serverName }));
  }

  encode(tsMs: number): { key: Buffer; value: Buffer } {
    if (!this.ids || !this.key) throw new Error('HeartbeatRecords.ready() must resolve before encode');
    return { key: this.key, value: wire(this.ids.value, valueType.toBuffer({ ts_ms: tsMs })) };
  }
}

/** A record of the heartbeat topic, decoded (for consumers and tests). */
export function decodeHeartbeatRecord(value: Buffer): { ts_ms: number } {
  if (value.length < 5 || value[0] !== 0) throw new Error('not a Confluent wire-format Avro value');
  return valueType.fromBuffer(value.subarray(5)) as { ts_ms: number };
}
