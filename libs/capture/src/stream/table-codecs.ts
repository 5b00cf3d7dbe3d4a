import type { Client } from 'pg';
import { describeStreamColumns, type ColumnInfo } from '@pgferry/pg';
import { ChangeEncoder, buildSchemas, type RegistryClient } from '@pgferry/avro';
import type { RelationInfo } from '../change-event';

/** One published table: its topic and the key the snapshot used. */
export interface PublishedTable {
  schema: string;
  table: string;
  topic: string;
  key: string[];
  /** objects.include[].operations: changes of other kinds are skipped (omitted: none are). */
  operations?: readonly string[];
}

/** What the change publisher encodes a table's changes with. */
export interface TableCodec {
  columns: ColumnInfo[];
  encoder: ChangeEncoder;
}

export interface TableCodecsOptions {
  registry: RegistryClient;
  /** A source connection: describes a table again after a schema change. */
  source: Client;
  prefix: string;
  sourceDb: string;
}

/**
 * Each published table's encoder, with the snapshot's schemas while the source's columns stay
 * the same; after a schema change the table is described again and a new schema version
 * registered. A failed description is tried again with the table's next change.
 */
export class TableCodecs {
  private readonly codecs = new Map<string, Promise<TableCodec>>();
  private readonly ready = new Map<string, { relation: RelationInfo; codec: TableCodec }>();
  /** readyFor's answer per description (a streamed transaction's own Relation messages). */
  private readonly matched = new WeakMap<RelationInfo, TableCodec | null>();
  /** Descriptions readyFor made an encoder for in the background. */
  private readonly warmed = new WeakSet<RelationInfo>();

  constructor(private readonly opts: TableCodecsOptions) {}

  async codec(table: PublishedTable, relation: RelationInfo): Promise<TableCodec> {
    // The decoder keeps one RelationInfo per table until the source describes it anew, so the
    // per-event check is an identity test; column names are compared only on a new description.
    const current = this.current(table, relation);
    if (current) return current;
    const name = `${table.schema}\u0000${table.table}`;
    const shape = relation.columns.map((c) => c.name).join('\u0000');
    let pending = this.codecs.get(name);
    let codec = pending ? await pending : null;
    if (!codec || codec.columns.map((c) => c.name).join('\u0000') !== shape) {
      pending = this.describe(table, relation);
      this.codecs.set(name, pending);
      pending.catch(() => this.codecs.delete(name));
      codec = await pending;
    }
    this.ready.set(name, { relation, codec });
    return codec;
  }

  /** The encoder `codec` gave for this very description, or null (then await `codec`). */
  current(table: PublishedTable, relation: RelationInfo): TableCodec | null {
    const ready = this.ready.get(`${table.schema}\u0000${table.table}`);
    return ready?.relation === relation ? ready.codec : null;
  }

  /**
   * The table's current encoder when it fits `relation` (the same columns), without waiting:
   * null when the description differs (a schema change: encoded once its transaction commits,
   * through `codec`), or when the table has no encoder yet; one is then made in the background
   * (a failure is left for `codec` to report), for the table's next changes.
   */
  readyFor(table: PublishedTable, relation: RelationInfo): TableCodec | null {
    const name = `${table.schema}\u0000${table.table}`;
    const ready = this.ready.get(name);
    if (!ready) {
      // Once per description: a describe that fails now (a schema change not committed yet) is
      // not repeated for each of its transaction's changes.
      if (!this.codecs.has(name) && !this.warmed.has(relation)) {
        this.warmed.add(relation);
        this.codec(table, relation).catch(() => undefined);
      }
      return null;
    }
    if (ready.relation === relation) return ready.codec;
    let codec = this.matched.get(relation);
    if (codec === undefined) {
      const shape = relation.columns.map((c) => c.name).join('\u0000');
      codec = ready.codec.columns.map((c) => c.name).join('\u0000') === shape ? ready.codec : null;
      this.matched.set(relation, codec);
    }
    return codec;
  }

  private async describe(table: PublishedTable, relation: RelationInfo): Promise<TableCodec> {
    // Generated columns are not in the stream; everything pgoutput sends is carried.
    const columns = await describeStreamColumns(
      this.opts.source,
      table.schema,
      table.table,
      relation.columns,
      table.key,
    );
    const schemas = buildSchemas(this.opts.prefix, table.schema, table.table, columns);
    const ids = {
      key: schemas.key ? await this.opts.registry.register(`${table.topic}-key`, schemas.key) : null,
      value: await this.opts.registry.register(`${table.topic}-value`, schemas.value),
    };
    return {
      columns,
      encoder: new ChangeEncoder(columns, schemas, ids, {
        name: this.opts.prefix,
        db: this.opts.sourceDb,
        schema: table.schema,
        table: table.table,
      }),
    };
  }
}
