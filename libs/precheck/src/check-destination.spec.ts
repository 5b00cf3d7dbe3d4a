import { checkConflicts, checkNames } from './check-destination';
import { checkDestinationPrivileges } from './check-privileges';
import {
  checkDestinationWritable,
  checkEncoding,
  checkSameDatabase,
  checkVersions,
  sameDatabase,
} from './check-server';
import { relKey } from './precheck-facts';
import {
  ALL_TABLE_PRIVILEGES,
  databaseFacts,
  destinationFacts,
  selected,
  serverInfo,
  sourceFacts,
  specOf,
} from './precheck-fixtures';

const orders = selected('Sales', 'Orders', { targetSchema: 'Verkauf', targetTable: 'Aufträge "neu"' });
const target = '"Verkauf"."Aufträge ""neu"""';
const existing = (kind = 'r') =>
  destinationFacts({
    relations: new Map([[relKey('Verkauf', 'Aufträge "neu"'), { kind, privileges: ALL_TABLE_PRIVILEGES }]]),
  });

describe('checkConflicts', () => {
  it('fails an existing target table under report-error, naming it and the three ways out', () => {
    const items = checkConflicts(specOf(), [orders], existing());
    expect(items[0]).toEqual({
      id: `conflicts:${target}`,
      name: 'destination conflicts',
      object: target,
      level: 'failed',
      message: `destination already has table ${target}, the target of source table "Sales"."Orders"; drop or rename it on the destination, map the source table to another name (objects.include[].renameTables or renameTo), or set options.conflictMode: ignore to write the rows into it by key`,
      fix: 'drop or rename the destination table, rename the target in the task spec, or set options.conflictMode: ignore',
    });
    expect(items[1]).toEqual({
      id: 'conflicts:schemas',
      name: 'destination conflicts',
      level: 'passed',
      message: '"Verkauf" is created',
    });
  });

  it('alerts under ignore (rows upserted by key), and fails a non-table in the way in both modes', () => {
    const ignore = specOf({ options: { conflictMode: 'ignore' } });
    const [alert] = checkConflicts(ignore, [orders], existing());
    expect(alert.level).toBe('alert');
    expect(alert.message).toBe(
      `destination already has table ${target}, the target of source table "Sales"."Orders"; with options.conflictMode: ignore its definition and rows are kept, source rows are upserted into it by key (a row with the same key is overwritten) and rows the source lacks stay, so its columns must match the source table's`,
    );
    const [view] = checkConflicts(ignore, [orders], existing('v'));
    expect([view.level, view.message.slice(0, 60)]).toEqual([
      'failed',
      `destination already has a view named ${target}, the target of `.slice(0, 60),
    ]);
  });

  it('expects the tables of an earlier run of this task, and requires them without the schema phase', () => {
    const resumed = { ...existing(), controlTask: { slotName: 'pgferry_orders' } };
    expect(checkConflicts(specOf(), [orders], resumed)[0]).toEqual({
      id: 'conflicts',
      name: 'destination conflicts',
      level: 'passed',
      message:
        '1 of 1 target tables exist on the destination from an earlier run of task orders; the task resumes',
    });
    const dataOnly = specOf({ migrationTypes: { schema: false, full: true } });
    const [missing] = checkConflicts(dataOnly, [orders], destinationFacts());
    expect(missing.level).toBe('failed');
    expect(missing.message).toBe(
      `target table ${target} (of source table "Sales"."Orders") does not exist on the destination and migrationTypes.schema is false, so nothing creates it; create the table on the destination, or set migrationTypes.schema: true`,
    );
    expect(checkConflicts(dataOnly, [orders], existing()).map((i) => [i.id, i.level])).toEqual([
      ['conflicts', 'passed'],
    ]);
  });

  it('reports existing target schemas as reused', () => {
    const items = checkConflicts(specOf(), [selected('public', 'a'), orders], destinationFacts());
    expect(items.map((i) => i.message)).toEqual([
      'none of the 2 target tables exists on the destination',
      'target schema "public" already exists on the destination and is reused; "Verkauf" is created',
    ]);
  });
});

describe('checkNames', () => {
  it('fails target names longer than the destination holds, counting bytes, not characters', () => {
    const long = 'é'.repeat(32);
    const items = checkNames([selected('public', 'short', { targetTable: long })], destinationFacts());
    expect(items).toEqual([
      {
        id: `names:"public"."${long}"`,
        name: 'names',
        level: 'failed',
        object: `"public"."${long}"`,
        message: `target table name "${long}" of source table "public"."short" (set by objects.include[].renameTables) is 64 bytes long; the destination holds names of at most 63 bytes and would truncate it; choose a shorter name with objects.include[].renameTables`,
        fix: 'set a shorter name in objects.include[].renameTables in the task spec',
      },
    ]);
    expect(checkNames([selected('public', 'é'.repeat(31) + 'a')], destinationFacts())[0].level).toBe(
      'passed',
    );
  });

  it('fails reserved schema names once per schema', () => {
    const items = checkNames(
      [
        selected('a', 't1', { targetSchema: 'pg_stuff' }),
        selected('a', 't2', { targetSchema: 'pg_stuff' }),
        selected('b', 't', { targetSchema: 'pgferry' }),
      ],
      destinationFacts(),
    );
    expect(items.map((i) => i.id)).toEqual(['names:"pg_stuff"', 'names:"pgferry"']);
    expect(items[0].message).toBe(
      'target schema "pg_stuff" (of source table "a"."t1", set by objects.include[].renameTo) starts with pg_, which PostgreSQL reserves for system schemas; choose another name with objects.include[].renameTo',
    );
  });
});

describe('checkDestinationPrivileges', () => {
  const spec = specOf({ options: { conflictMode: 'ignore' } });
  const user = serverInfo({ user: 'app "rw"', major: 14, version: '14.9' });

  it('names every missing privilege with its GRANT', () => {
    const dst = destinationFacts({
      info: user,
      db: databaseFacts({ canCreate: false, canTemp: false }),
      canSetReplicationRole: false,
      schemas: new Map([
        ['Verkauf', { owner: 'owner', usage: true, create: false }],
        ['pgferry', { owner: 'owner', usage: false, create: true }],
      ]),
      relations: new Map([
        [
          relKey('Verkauf', 'Aufträge "neu"'),
          { kind: 'r', privileges: { ...ALL_TABLE_PRIVILEGES, SELECT: false, TRUNCATE: false } },
        ],
        [relKey('pgferry', 'tasks'), { kind: 'r', privileges: { ...ALL_TABLE_PRIVILEGES, DELETE: false } }],
      ]),
    });
    const items = checkDestinationPrivileges(spec, dst, [orders]);
    expect(items.map((i) => [i.id, i.fix])).toEqual([
      ['privileges:destination:create', 'GRANT CREATE ON DATABASE "app" TO "app ""rw""";'],
      ['privileges:destination:temporary', 'GRANT TEMPORARY ON DATABASE "app" TO "app ""rw""";'],
      [
        'privileges:destination:session_replication_role',
        'ALTER ROLE "app ""rw""" SUPERUSER; -- or use a superuser in the task spec',
      ],
      ['privileges:destination:schema:"pgferry"', 'GRANT USAGE ON SCHEMA "pgferry" TO "app ""rw""";'],
      ['privileges:destination:schema:"Verkauf"', 'GRANT CREATE ON SCHEMA "Verkauf" TO "app ""rw""";'],
      [
        'privileges:destination:table:"pgferry"."tasks"',
        'GRANT DELETE ON TABLE "pgferry"."tasks" TO "app ""rw""";',
      ],
      [
        `privileges:destination:table:${target}`,
        `GRANT SELECT, TRUNCATE ON TABLE ${target} TO "app ""rw""";`,
      ],
    ]);
    expect(items[6].message).toBe(
      `destination user "app ""rw""" lacks SELECT, TRUNCATE on existing table ${target}: the applier upserts, deletes and truncates its rows; grant them`,
    );
    const pg15 = checkDestinationPrivileges(spec, { ...dst, info: serverInfo({ user: 'app' }) }, [orders]);
    expect(pg15[2].fix).toBe('GRANT SET ON PARAMETER session_replication_role TO "app";');
  });

  it('asks only for CREATE on the database for a schema-only task, and passes a privileged user', () => {
    const schemaOnly = specOf({ migrationTypes: { schema: true, full: false } });
    const dst = destinationFacts({ db: databaseFacts({ canTemp: false }), canSetReplicationRole: false });
    expect(checkDestinationPrivileges(schemaOnly, dst, [orders]).map((i) => i.id)).toEqual([
      'privileges:destination',
    ]);
    expect(checkDestinationPrivileges(spec, destinationFacts(), [orders])[0].level).toBe('passed');
  });
});

describe('server checks', () => {
  it('tells the same database from another database, server or standby', () => {
    const a = databaseFacts();
    expect(sameDatabase(a, { ...a })).toBe(true);
    expect(sameDatabase(a, { ...a, databaseOid: 1, database: 'other' })).toBe(false);
    expect(sameDatabase(a, { ...a, startedAt: 'later' })).toBe(false);
    expect(sameDatabase(a, { ...a, systemIdentifier: '2' })).toBe(false);
    expect(sameDatabase(a, { ...a, systemIdentifier: null })).toBe(true);
    expect(checkSameDatabase(a, a, 'app@db:5432/app')).toEqual({
      id: 'same-database',
      name: 'same database',
      level: 'failed',
      object: 'app@db:5432/app',
      message:
        'source and destination are the same database (app@db:5432/app); point the destination at another database or server',
      fix: 'change destination (url, host, port or database) in the task spec',
    });
  });

  it('fails an older destination, a destination in recovery, and alerts on a narrower encoding', () => {
    const src = sourceFacts([], { info: serverInfo({ major: 16, version: '16.2' }) });
    expect(checkVersions(src, destinationFacts()).message).toBe(
      "destination runs PostgreSQL 15.4, older than the source's 16.2; use a destination of major version 16 or later",
    );
    expect(checkDestinationWritable(destinationFacts(), 'x')).toBeNull();
    expect(
      checkDestinationWritable(destinationFacts({ db: databaseFacts({ inRecovery: true }) }), 'x')?.level,
    ).toBe('failed');
    expect(checkEncoding(src, destinationFacts({ db: databaseFacts({ encoding: 'LATIN1' }) })).level).toBe(
      'alert',
    );
    expect(
      checkEncoding(sourceFacts([], { db: databaseFacts({ encoding: 'LATIN1' }) }), destinationFacts()).level,
    ).toBe('passed');
  });
});
