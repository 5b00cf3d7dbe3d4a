import { parseTaskSpec, type TaskSpecInput } from '@pgferry/core';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { quoteIdent } from '@pgferry/pg';
import { formatPrecheckReport, runPrecheck, type PrecheckReport } from './index';

/** Privileges, the task's slot and the objects a logical migration leaves out, against real servers. */
describe('runPrecheck: privileges, slot, objects', () => {
  let src: PgCluster;
  let dst: PgCluster;
  beforeAll(async () => {
    [src, dst] = await Promise.all([startPostgres({ logical: true }), startPostgres({ logical: false })]);
  });
  afterAll(async () => {
    await src?.stop();
    await dst?.stop();
  });

  const notPassed = (r: PrecheckReport) => r.items.filter((i) => i.level !== 'passed');
  /** Catalog counts that any write by the precheck (object, slot, publication, role change) would move. */
  const fingerprint = (pg: PgCluster, db: string) =>
    pg.query(
      `SELECT (SELECT count(*) FROM pg_class) AS relations, (SELECT count(*) FROM pg_namespace) AS schemas,
              (SELECT count(*) FROM pg_replication_slots) AS slots, (SELECT count(*) FROM pg_publication) AS publications,
              (SELECT string_agg(rolname || rolreplication || rolsuper, ',' ORDER BY rolname) FROM pg_roles) AS roles`,
      [],
      db,
    );

  it('names each missing privilege and its GRANT; the GRANTs clear them; nothing is written', async () => {
    const reader = 'app "ro" ü';
    const writer = 'app "rw" ü';
    await src.query(`CREATE ROLE ${quoteIdent(reader)} LOGIN PASSWORD 'pw-ro-123'`);
    await dst.query(`CREATE ROLE ${quoteIdent(writer)} LOGIN PASSWORD 'pw-rw-456'`);
    await Promise.all([src.createDatabase('privs'), dst.createDatabase('privs')]);
    await src.query(
      `CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Orders" (id serial PRIMARY KEY, note text);
       CREATE TABLE "Sales".items (id int PRIMARY KEY);
       GRANT USAGE ON SCHEMA "Sales" TO ${quoteIdent(reader)}; GRANT SELECT ON "Sales".items TO ${quoteIdent(reader)}`,
      [],
      'privs',
    );
    await dst.query(
      `CREATE SCHEMA "Sales"; CREATE TABLE "Sales"."Orders" (id int PRIMARY KEY, note text);
       GRANT USAGE ON SCHEMA "Sales" TO ${quoteIdent(writer)}; GRANT INSERT ON "Sales"."Orders" TO ${quoteIdent(writer)}`,
      [],
      'privs',
    );
    const input: TaskSpecInput = {
      name: 'privs',
      source: { host: src.host, port: src.port, database: 'privs', user: reader, password: 'pw-ro-123' },
      destination: { host: dst.host, port: dst.port, database: 'privs', user: writer, password: 'pw-rw-456' },
      migrationTypes: { incremental: true },
      options: { conflictMode: 'ignore' },
    };
    const before = await Promise.all([fingerprint(src, 'privs'), fingerprint(dst, 'privs')]);
    const report = await runPrecheck(parseTaskSpec(input));
    expect(await Promise.all([fingerprint(src, 'privs'), fingerprint(dst, 'privs')])).toEqual(before);

    const r = '"app ""ro"" ü"';
    const w = '"app ""rw"" ü"';
    expect(notPassed(report).map((i) => [i.id, i.level, i.fix])).toEqual([
      ['logical:replication', 'failed', `ALTER ROLE ${r} REPLICATION;`],
      [
        'privileges:source:select:"Sales"."Orders"',
        'failed',
        `GRANT SELECT ON TABLE "Sales"."Orders" TO ${r};`,
      ],
      ['privileges:source:create', 'failed', `GRANT CREATE ON DATABASE "privs" TO ${r};`],
      ['privileges:source:owner:"postgres"', 'failed', `GRANT "postgres" TO ${r};`],
      [
        'privileges:source:sequence:"Sales"."Orders_id_seq"',
        'failed',
        `GRANT SELECT ON SEQUENCE "Sales"."Orders_id_seq" TO ${r};`,
      ],
      [
        'ddl-capture',
        'alert',
        `ALTER ROLE ${r} SUPERUSER; -- or acknowledge, and change the destination's schema first`,
      ],
      ['privileges:destination:create', 'failed', `GRANT CREATE ON DATABASE "privs" TO ${w};`],
      [
        'privileges:destination:session_replication_role',
        'failed',
        `GRANT SET ON PARAMETER session_replication_role TO ${w};`,
      ],
      ['privileges:destination:schema:"Sales"', 'failed', `GRANT CREATE ON SCHEMA "Sales" TO ${w};`],
      [
        'privileges:destination:table:"Sales"."Orders"',
        'failed',
        `GRANT SELECT, UPDATE, DELETE, TRUNCATE ON TABLE "Sales"."Orders" TO ${w};`,
      ],
      ['conflicts:"Sales"."Orders"', 'alert', expect.any(String)],
    ]);
    const message = (id: string) => report.items.find((i) => i.id === id)?.message;
    expect(message('logical:replication')).toBe(
      `source: user app "ro" ü has no REPLICATION attribute; run ALTER ROLE ${r} REPLICATION as a superuser`,
    );
    expect(message('privileges:source:select:"Sales"."Orders"')).toBe(
      `source user ${r} lacks SELECT on table "Sales"."Orders": the schema dump locks it and the snapshot reads its rows; grant it`,
    );
    expect(message('privileges:source:owner:"postgres"')).toBe(
      `source user ${r} does not own 2 tables "Sales"."Orders", "Sales"."items" (owner "postgres"): incremental migration publishes them with CREATE PUBLICATION ... FOR TABLE, which PostgreSQL allows only to the owner; make the user a member of the owner role, or run the task as a superuser`,
    );
    expect(message('privileges:destination:create')).toBe(
      `destination user ${w} lacks CREATE on database "privs": pgferry keeps its control schema "pgferry" there and the schema migration creates the target schemas; grant it`,
    );
    expect(message('privileges:destination:table:"Sales"."Orders"')).toBe(
      `destination user ${w} lacks SELECT, UPDATE, DELETE, TRUNCATE on existing table "Sales"."Orders": the applier upserts, deletes and truncates its rows; grant them`,
    );
    const text = formatPrecheckReport(report);
    expect(text).toContain(`\n${' '.repeat(36)}fix: GRANT CREATE ON DATABASE "privs" TO ${r};`);
    expect(JSON.stringify(report) + text).not.toMatch(/pw-ro-123|pw-rw-456/);

    // Each offered statement, run by a superuser, clears its item.
    for (const item of report.items.filter((i) => i.level === 'failed')) {
      await (item.id.includes(':destination:') ? dst : src).query(item.fix!, [], 'privs');
    }
    const after = await runPrecheck(parseTaskSpec(input));
    // The GRANTs clear every failure; a non-superuser stays unable to capture DDL (an alert).
    expect(notPassed(after).map((i) => i.id)).toEqual(['ddl-capture', 'conflicts:"Sales"."Orders"']);
    expect(
      after.items.filter((i) => i.id.startsWith('privileges:') || i.id === 'logical').map((i) => i.id),
    ).toEqual(['logical', 'privileges:source', 'privileges:destination']);
  });

  it('fails a slot of the task name that the destination does not record, and alerts when it resumes', async () => {
    await Promise.all([src.createDatabase('resume'), dst.createDatabase('resume')]);
    await src.query('CREATE TABLE public.t (id int PRIMARY KEY)', [], 'resume');
    await src.query(`SELECT pg_create_logical_replication_slot('pgferry_resume', 'pgoutput')`, [], 'resume');
    try {
      const spec = parseTaskSpec({
        name: 'resume',
        source: { url: src.url('resume') },
        destination: { url: dst.url('resume') },
        migrationTypes: { incremental: true },
      });
      const unrecorded = await runPrecheck(spec);
      expect(notPassed(unrecorded)).toEqual([
        {
          id: 'slot:pgferry_resume',
          name: 'replication slot',
          level: 'failed',
          object: 'pgferry_resume',
          message:
            "replication slot pgferry_resume already exists on the source but no task resume on this destination records it: it belongs to a task of the same name that migrates to another destination, or to a run whose control schema was dropped, and the snapshot cannot be taken from an existing slot; if nothing uses it, drop it with SELECT pg_drop_replication_slot('pgferry_resume'), otherwise give this task another name",
          fix: "SELECT pg_drop_replication_slot('pgferry_resume');",
        },
      ]);
      // What an earlier run of this task leaves on the destination: its record and its tables.
      await dst.query(
        `CREATE SCHEMA pgferry; CREATE TABLE pgferry.tasks (task text PRIMARY KEY, spec jsonb NOT NULL, slot_name text);
         INSERT INTO pgferry.tasks VALUES ('resume', '{}', 'pgferry_resume');
         CREATE TABLE public.t (id int PRIMARY KEY)`,
        [],
        'resume',
      );
      const resumed = await runPrecheck(spec);
      expect(notPassed(resumed)).toEqual([]);
      expect(resumed.items.find((i) => i.id === 'slot:pgferry_resume')?.message).toMatch(
        /^replication slot pgferry_resume already exists on the source and the destination records it for task resume \(an earlier run\): the task resumes with it instead of creating a new slot and snapshot, and streams the changes after its confirmed position [0-9A-F]+\/[0-9A-F]+; /,
      );
      expect(resumed.items.find((i) => i.id === 'conflicts')?.message).toBe(
        '1 of 1 target tables exist on the destination from an earlier run of task resume; the task resumes',
      );
    } finally {
      await src.query(`SELECT pg_drop_replication_slot('pgferry_resume')`, [], 'resume');
    }
  });

  it('notes large objects, unlogged tables, generated columns and owned sequences', async () => {
    await Promise.all([src.createDatabase('objects'), dst.createDatabase('objects')]);
    await src.query(
      `CREATE TABLE public.invoices (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, net numeric,
                                     gross numeric GENERATED ALWAYS AS (net * 1.2) STORED);
       CREATE UNLOGGED TABLE public.scratch (id serial PRIMARY KEY);
       SELECT lo_from_bytea(0, 'blob'::bytea)`,
      [],
      'objects',
    );
    const spec = (incremental: boolean) =>
      parseTaskSpec({
        name: 'objects',
        source: { url: src.url('objects') },
        destination: { url: dst.url('objects') },
        migrationTypes: { incremental },
      });
    const full = await runPrecheck(spec(false));
    const ids = [
      'large-objects',
      'generated:"public"."invoices"',
      'unlogged:"public"."scratch"',
      'sequences',
    ];
    expect(full.items.filter((i) => ids.includes(i.id)).map((i) => [i.id, i.level, i.message])).toEqual([
      [
        'large-objects',
        'alert',
        'source database "objects" holds 1 large object (pg_largeobject): a logical migration does not carry them, and oid columns that point at them would dangle on the destination; copy them separately with pg_dump --blobs, or acknowledge if they are not needed',
      ],
      [
        'generated:"public"."invoices"',
        'passed',
        '"public"."invoices" has generated columns "gross": they are not copied; the destination computes them from the other columns',
      ],
      [
        'unlogged:"public"."scratch"',
        'passed',
        '"public"."scratch" is UNLOGGED: the snapshot copies its rows, and the destination table is unlogged too (emptied by a crash of the destination)',
      ],
      [
        'sequences',
        'passed',
        '2 sequences owned by the selected tables ("public"."invoices_id_seq", "public"."scratch_id_seq") are set to their source values at cutover; until then the destination\'s sequences lag behind',
      ],
    ]);
    const incremental = await runPrecheck(spec(true));
    expect(notPassed(incremental).map((i) => [i.id, i.level])).toEqual([
      ['large-objects', 'alert'],
      ['unlogged:"public"."scratch"', 'alert'],
    ]);
  });
});
