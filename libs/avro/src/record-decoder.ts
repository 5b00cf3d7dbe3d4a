import avro from 'avsc';
import { DataError } from '@pgferry/core';
import { avscOptions, converterFor, type AvroSchema } from './avro-mapping';
import type { RegistryClient } from './registry-client';
import { requireWireSchemaId, WIRE_HEADER_BYTES } from './confluent-wire';
import { changeReader, type DecodedChange } from './change-reader';

export type { DecodedChange };

interface Envelope {
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  op: DecodedChange['op'];
  source: { schema: string; table: string; lsn: bigint | null; snapshot: string | null };
  pgferry_unchanged_toast?: string[];
}

interface WriterPlan {
  /** The envelope read without avsc, where the writer schema is pgferry's (changeReader). */
  fast: ((buf: Buffer, start: number, end: number) => DecodedChange) | null;
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
  /** The plans fetched, by id: decodeLoadedAt reads with them without awaiting. */
  private loaded = new Map<number, WriterPlan>();

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
        const type = avro.Type.forSchema(schema as avro.Schema, avscOptions());
        const plan: WriterPlan = {
          fast: changeReader(schema, type),
          type,
          columns: value.fields.map((f) => f['pg.name'] ?? f.name),
          fields: value.fields.map((f) => f.name),
          convs: value.fields.map((f) => converterFor(f.type)),
        };
        this.loaded.set(id, plan);
        return plan;
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
    return this.decodeWith(id, await this.plan(id), value);
  }

  /**
   * Whether values of schema `id` are read by changeReader (the envelope pgferry writes, however
   * the registry spells it) rather than by avsc: the applier's fast path, for tests and checks.
   */
  async readsWithoutAvsc(id: number): Promise<boolean> {
    return (await this.plan(id)).fast !== null;
  }

  /**
   * decode() of the value at buf[start, end) without a promise or a view of it (the appliers'
   * per-record path), where the writer schema was fetched already (by an earlier decode);
   * undefined where it was not: the caller then awaits decode().
   */
  decodeLoadedAt(buf: Buffer, start: number, end: number): DecodedChange | undefined {
    const id = requireWireSchemaId(buf, start, end);
    const plan = this.loaded.get(id);
    if (!plan) return undefined;
    if (plan.fast) return this.readFast(id, plan.fast, buf, start + WIRE_HEADER_BYTES, end);
    return this.decodeWith(id, plan, buf.subarray(start, end));
  }

  private readFast(
    id: number,
    fast: NonNullable<WriterPlan['fast']>,
    buf: Buffer,
    start: number,
    end: number,
  ): DecodedChange {
    try {
      return fast(buf, start, end);
    } catch (err) {
      if (!(err instanceof DataError)) throw err;
      throw new DataError(
        `Avro value of schema ${id} does not decode (${err.message}): the record is corrupt, or was not written with that schema`,
        { cause: err },
      );
    }
  }

  private decodeWith(id: number, plan: WriterPlan, value: Buffer): DecodedChange {
    if (plan.fast) return this.readFast(id, plan.fast, value, WIRE_HEADER_BYTES, value.length);
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
