import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Client } from 'pg';
import {
  captureOutput,
  createAllTypes,
  pythonVenv,
  startPostgres,
  waitFor,
  type PgCluster,
  startTestBroker,
  type TestBroker,
} from '@pgferry/testing';
import { quoteIdent, quoteQualified } from '@pgferry/pg';
import { runMigrate } from './migrate-command';
import { runCutover } from './cutover-command';
import { readTaskStatus } from './api/task-status';

const execFileP = promisify(execFile);
const ROOT = join(__dirname, '..', '..', '..');
const VENV = join(ROOT, 'node_modules', '.cache', 'pgferry', 'contract-venv');

type Row = Record<string, string | null>;
interface RebuiltTable {
  schema: string;
  table: string;
  topic: string;
  keyed: boolean;
  count: number;
  digest: string;
  records: Record<string, number>;
  rows: Row[];
}
interface Rebuilt {
  tables: RebuiltTable[];
  empty_topics: string[];
  transactions: { begin: number; end: number; open: string[]; count_mismatches: string[] };
  heartbeat: { beats: number };
}

/** The text forms docs/records.md fixes; the consumers render every value into them. */
const TEXT_SETTINGS = `SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres';
  SET extra_float_digits = 3; SET bytea_output = 'hex'`;

/** A row as the consumers print it: JSON with sorted keys, no spaces (Python's json.dumps). */
const canonical = (r: Row) =>
  JSON.stringify(
    Object.fromEntries(
      Object.keys(r)
        .sort()
        .map((k) => [k, r[k]]),
    ),
  );
/** Code point order, as Python sorts str (UTF-8 byte order is code point order). */
const sortedCanonical = (rows: Row[]) =>
  rows.map(canonical).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));

/**
 * Every row of a source table, each column as its type's output function prints it (the text
 * protocol, no parsing; `col::text` differs for boolean, inet, char(n)), NULL as null.
 */
async function sourceRows(c: Client, schema: string, table: string): Promise<Row[]> {
  const { rows: cols } = await c.query(
    `SELECT attname FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0
       AND NOT attisdropped AND attgenerated = '' ORDER BY attnum`,
    [quoteQualified(schema, table)],
  );
  const text = `SELECT ${cols.map((r) => quoteIdent(r.attname)).join(', ')} FROM ${quoteQualified(schema, table)}`;
  return (await c.query({ text, types: { getTypeParser: () => (v: string) => v } })).rows;
}

/** The rows one side has and the other lacks (as many times as it lacks them), cut for reading. */
function difference(got: string[], want: string[]) {
  const count = new Map<string, number>();
  for (const w of want) count.set(w, (count.get(w) ?? 0) + 1);
  const extra: string[] = [];
  for (const g of got) {
    const n = count.get(g) ?? 0;
    if (n === 0) extra.push(g.slice(0, 400));
    else count.set(g, n - 1);
  }
  const missing = [...count].flatMap(([w, n]) => Array<string>(n).fill(w.slice(0, 400)));
  return { missing, extra };
}

/** kcat's JSON lines (see contract/kcat_rebuild.py: strings hold the raw bytes, read as Latin-1). */
async function kcatJson(brokers: string[], args: string[]): Promise<Array<Record<string, unknown>>> {
  const { stdout } = await execFileP('kcat', ['-b', brokers.join(','), '-q', ...args, '-J'], {
    encoding: 'latin1',
    maxBuffer: 256 * 1024 * 1024,
  });
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/** Key id -> partition of the records of a table topic with an int key (zigzag varint after the header). */
async function keyPartitions(brokers: string[], topic: string): Promise<Map<number, number>> {
  const found = new Map<number, number>();
  for (const m of await kcatJson(brokers, ['-C', '-t', topic, '-o', 'beginning', '-e'])) {
    const key = Buffer.from(m.key as string, 'latin1');
    let n = 0;
    for (let i = 5, shift = 0; i < key.length; i++, shift += 7) n |= (key[i] & 0x7f) << shift;
    found.set((n >>> 1) ^ -(n & 1), m.partition as number);
  }
  return found;
}

async function partitionCount(brokers: string[], topic: string): Promise<number> {
  const [meta] = await kcatJson(brokers, ['-L', '-t', topic]);
  return (meta.topics as Array<{ partitions: unknown[] }>)[0].partitions.length;
}

describe('consumers nobody on the team wrote rebuild the source tables from the topics', () => {
  let source: PgCluster;
  let destination: PgCluster;
  // The embedded broker in the integration project, real Kafka with pgferry's registry in integration-kafka.
  let kafka: TestBroker;
  let python: string;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-consumers-'));
  beforeAll(async () => {
    [source, destination, kafka, python] = await Promise.all([
      startPostgres({ logical: true }),
      startPostgres(),
      startTestBroker(),
      pythonVenv(join(ROOT, 'contract', 'requirements.txt'), VENV),
    ]);
  }, 300_000);
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop(), kafka?.close()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('confluent-kafka + fastavro and kcat + fastavro fold the Debezium records of a migrate --incremental into tables equal to the source after cutover', async () => {
    const name = 'contract';
    await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
    const s = await source.connect(name);
    const types = await createAllTypes(s);
    await s.query(`
      CREATE SCHEMA "Sales Ü";
      CREATE TABLE "Sales Ü"."Order Items" (id int PRIMARY KEY, "Qty Ü" int NOT NULL,
        owner uuid NOT NULL, price numeric(12,2) NOT NULL, note text);
      INSERT INTO "Sales Ü"."Order Items"
        SELECT g, g % 7, md5(g::text)::uuid, g * 1.25, CASE WHEN g % 5 = 0 THEN NULL ELSE 'n' || g END
        FROM generate_series(1, 200) g;
      CREATE TABLE docs (id int PRIMARY KEY, body text NOT NULL, summary text, n int NOT NULL);
      ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL, ALTER COLUMN summary SET STORAGE EXTERNAL;
      INSERT INTO docs SELECT g, repeat('b', 9000) || g, repeat('r', 9000) || g, g FROM generate_series(1, 40) g;
      CREATE TABLE events (at timestamp, kind text, amount double precision, payload jsonb);
      ALTER TABLE events REPLICA IDENTITY FULL;
      INSERT INTO events SELECT '2024-01-01'::timestamp + g * interval '1 min', 'k' || (g % 3), g / 7.0,
        jsonb_build_object('g', g % 5) FROM generate_series(1, 60) g;
      INSERT INTO events SELECT * FROM events WHERE kind = 'k0';
      CREATE TABLE queue (id bigint PRIMARY KEY, v text);
      INSERT INTO queue SELECT g, 'q' || g FROM generate_series(1, 100) g;`);
    const spec = join(dir, `${name}.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        migrationTypes: { incremental: true },
        kafka: { brokers: kafka.brokers, schemaRegistryUrl: kafka.registryUrl },
      }),
    );
    const d = await destination.connect(name);
    const out = captureOutput();
    const migration = runMigrate({ spec, workDir: join(dir, name), inProcess: true, out: out.out });
    migration.catch(() => undefined);
    await waitFor(
      async () =>
        (await d.query(`SELECT to_regclass('pgferry.phases') IS NOT NULL AS has`)).rows[0].has &&
        (await readTaskStatus(d, name))?.phases.find((p) => p.phase === 'incremental')?.status,
      { reason: 'the incremental phase to start', until: (v) => v === 'running', timeout: 90_000 },
    );
    const prefix = `pgferry.${name}`;

    // Every type's edge values in streamed inserts; an update that leaves row 3's TOASTed
    // values unchanged; a key change; the all-NULL row deleted.
    const rest = types.columns.slice(1).map((c) => quoteIdent(c.name));
    await s.query(`INSERT INTO all_types SELECT id + 10, ${rest.join(', ')} FROM all_types WHERE id <= 3`);
    await s.query(`UPDATE all_types SET c_bool = NOT c_bool, c_int4 = c_int4 / 2 WHERE id = 3`);
    await s.query(`UPDATE all_types SET id = 21 WHERE id = 1`);
    await s.query(`DELETE FROM all_types WHERE id = 4`);
    // Keys moving across partitions and back (the old keys used again); deletes; NaN in a numeric(12,2).
    await s.query(`UPDATE "Sales Ü"."Order Items" SET id = id + 1000, "Qty Ü" = "Qty Ü" + 1 WHERE id <= 30`);
    await s.query(`UPDATE "Sales Ü"."Order Items" SET id = id - 1000 WHERE id BETWEEN 1001 AND 1010`);
    await s.query(`DELETE FROM "Sales Ü"."Order Items" WHERE id BETWEEN 100 AND 119`);
    await s.query(`UPDATE "Sales Ü"."Order Items" SET price = 'NaN', note = NULL WHERE id = 150`);
    // TOASTed values an UPDATE leaves alone (body is NOT NULL). Then, in one transaction, a
    // delete and a key change onto the deleted row's key that leaves them alone too, within one
    // partition (across partitions the applier may stop, docs/records.md).
    await s.query(`UPDATE docs SET n = n + 1 WHERE id <= 20`);
    const parts = await keyPartitions(kafka.brokers, `${prefix}.public.docs`);
    const moved = [...parts].find(([id, p]) => id < 40 && p === parts.get(40))?.[0];
    expect(moved).toBeDefined();
    await s.query(
      `BEGIN; DELETE FROM docs WHERE id = 40; UPDATE docs SET id = 40 WHERE id = ${Number(moved)}; COMMIT`,
    );
    // A keyless table: one of two equal rows deleted, updates, inserts.
    await s.query(
      `DELETE FROM events WHERE ctid = (SELECT min(ctid) FROM events WHERE kind = 'k0' AND payload->>'g' = '3')`,
    );
    await s.query(`UPDATE events SET amount = amount * 2 WHERE kind = 'k1'`);
    await s.query(
      `INSERT INTO events VALUES ('2025-06-01', 'late', 'NaN', NULL), ('2025-06-01', 'late', 'NaN', NULL)`,
    );
    // Truncates on every partition, rows before and after them in other partitions.
    await s.query(`INSERT INTO queue SELECT g, 'before' FROM generate_series(101, 120) g`);
    await s.query(`TRUNCATE queue; INSERT INTO queue SELECT g, 'after' || g FROM generate_series(1, 30) g`);
    await s.query(
      `UPDATE queue SET v = 'last' WHERE id % 4 = 0; TRUNCATE events; INSERT INTO events VALUES (now(), 'reborn', 1, '{}')`,
    );

    const cut = captureOutput();
    const code = await runCutover({ spec, timeout: 120 }, cut.out);
    expect({ code, out: code ? cut.text() + out.text() : '' }).toEqual({ code: 0, out: '' });
    const done = await migration;
    expect({ code: done.code, out: done.code ? out.text() : '' }).toEqual({ code: 0, out: '' });

    const consumer = async (script: string): Promise<Rebuilt> => {
      const args = [
        '--brokers',
        kafka.brokers.join(','),
        '--registry',
        kafka.registryUrl,
        '--prefix',
        prefix,
      ];
      const run = await execFileP(python, [join(ROOT, 'contract', script), ...args], {
        maxBuffer: 512 * 1024 * 1024,
      }).catch((err: Error & { stderr?: string }) => {
        throw new Error(`${script} failed: ${err.stderr || err.message}`);
      });
      return JSON.parse(run.stdout) as Rebuilt;
    };
    const [byLibrdkafka, byKcat] = await Promise.all([
      consumer('rebuild_tables.py'),
      consumer('kcat_rebuild.py'),
    ]);
    expect(byKcat).toEqual(byLibrdkafka);

    await s.query(TEXT_SETTINGS);
    const tables = [
      [types.schema, types.table],
      ['Sales Ü', 'Order Items'],
      ['public', 'docs'],
      ['public', 'events'],
      ['public', 'queue'],
    ];
    expect(byLibrdkafka.empty_topics).toEqual([]);
    expect(byLibrdkafka.tables.map((t) => [t.schema, t.table]).sort()).toEqual([...tables].sort());
    for (const t of byLibrdkafka.tables) {
      const want = sortedCanonical(await sourceRows(s, t.schema, t.table));
      const got = sortedCanonical(t.rows);
      expect({ table: t.table, ...difference(got, want) }).toEqual({
        table: t.table,
        missing: [],
        extra: [],
      });
      expect({ table: t.table, count: t.count }).toEqual({ table: t.table, count: want.length });
      const digest = createHash('sha256').update(want.join('\n')).digest('hex');
      expect({ table: t.table, digest: t.digest }).toEqual({ table: t.table, digest });
    }
    // The stream held what the test means to cover.
    const stats = Object.fromEntries(byLibrdkafka.tables.map((t) => [t.table, t.records]));
    // id 4 deleted, id 1 moved to 21: a `d` and a tombstone each.
    expect(stats.all_types).toEqual(expect.objectContaining({ r: 4, c: 3, u: 2, d: 2, tombstone: 2 }));
    expect(stats.all_types.unchanged_toast).toBeGreaterThanOrEqual(1);
    expect(stats['Order Items']).toEqual(expect.objectContaining({ key_change: 40, d: 60, tombstone: 60 }));
    expect(stats.docs).toEqual(expect.objectContaining({ unchanged_toast: 21, key_change: 1 }));
    // A truncate is sent to every partition of the topic.
    const events = await partitionCount(kafka.brokers, `${prefix}.public.events`);
    expect(stats.events).toEqual(expect.objectContaining({ u: 20, d: 1, t: events }));
    expect(stats.queue.t).toBe(await partitionCount(kafka.brokers, `${prefix}.public.queue`));
    expect(byLibrdkafka.tables.find((t) => t.table === 'events')!.keyed).toBe(false);
    // BEGIN and END around every source transaction, END counting its changes per table.
    const txs = byLibrdkafka.transactions;
    expect(txs).toEqual({ begin: txs.end, end: txs.end, open: [], count_mismatches: [] });
    expect(txs.end).toBeGreaterThanOrEqual(15);
    await s.end();
    await d.end();
  }, 240_000);
});
