import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { avscOptions, converterFor, type AvroSchema } from './avro-mapping';
import type { RegistryClient } from './registry-client';
import { requireWireSchemaId, WIRE_HEADER_BYTES } from './confluent-wire';

export interface DecodedChange {
  op: 'r' | 'c' | 'u' | 'd' | 't';
  /** Source column names in the writer's order. */
  columns: string[];
  before: Array<string | null> | null;
  after: Array<string | null> | null;
  /** Columns whose TOASTed value the source did not send (unchanged by the UPDATE). */
  unchangedToast: string[];
  source: { schema: string; table: string; lsn: bigint | null; snapshot: string | null };
}

interface Envelope {
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  op: DecodedChange['op'];
  source: { schema: string; table: string; lsn: bigint | null; snapshot: string | null };
  pgferry_unchanged_toast?: string[];
}

interface WriterPlan {
  type: avro.Type;
  columns: string[];
  fields: string[];
  convs: ReturnType<typeof converterFor>[];
}

/**
 * Decodes envelope values in the Confluent wire format back into PostgreSQL text values,
 * driven by the writer schema (fetched by id and cached): every field's "pg.name" and Avro
 * type say which column it is and how to print it.
 */
export class RecordDecoder {
  private plans = new Map<number, Promise<WriterPlan>>();

  constructor(private readonly registry: RegistryClient) {}

  private plan(id: number): Promise<WriterPlan> {
    let p = this.plans.get(id);
    if (!p) {
      p = this.registry.schema(id).then((schema) => {
        const before = (schema.fields as Array<{ name: string; type: unknown[] }>).find(
          (f) => f.name === 'before',
        );
        const value = before?.type.find((t) => typeof t === 'object') as
          { fields: Array<{ name: string; type: AvroSchema; 'pg.name'?: string }> } | undefined;
        if (!value) throw new DataError(`schema ${id} is not a change envelope (no record in "before")`);
        return {
          type: avro.Type.forSchema(schema as avro.Schema, avscOptions()),
          columns: value.fields.map((f) => f['pg.name'] ?? f.name),
          fields: value.fields.map((f) => f.name),
          convs: value.fields.map((f) => converterFor(f.type)),
        };
      });
      p.catch(() => this.plans.delete(id));
      this.plans.set(id, p);
    }
    return p;
  }

  /**
   * The change in `value`. Bytes that are not a value of its writer schema are a DataError
   * naming the schema id; the caller, who knows it, adds the topic, partition and offset.
   */
  async decode(value: Buffer): Promise<DecodedChange> {
    const id = requireWireSchemaId(value);
    const plan = await this.plan(id);
    let env: Envelope;
    try {
      env = plan.type.fromBuffer(value.subarray(WIRE_HEADER_BYTES)) as Envelope;
    } catch (err) {
      // avsc throws plain Errors (truncated buffer, trailing data, invalid union index) for bad bytes.
      throw new DataError(
        `Avro value of schema ${id} does not decode (${(err as Error).message}): the record is corrupt, or was not written with that schema`,
        { cause: err },
      );
    }
    const texts = (rec: Record<string, unknown> | null) =>
      rec === null
        ? null
        : plan.fields.map((f, i) =>
            rec[f] === null || rec[f] === undefined ? null : plan.convs[i].fromAvro(rec[f]),
          );
    return {
      op: env.op,
      columns: plan.columns,
      before: texts(env.before),
      after: texts(env.after),
      unchangedToast: env.pgferry_unchanged_toast ?? [],
      source: {
        schema: env.source.schema,
        table: env.source.table,
        lsn: env.source.lsn,
        snapshot: env.source.snapshot,
      },
    };
  }
}
