import { checkLogicalDecoding, checkTaskSlot } from './check-server';
import { checkSourcePrivileges } from './check-privileges';
import { checkKeys, checkSelection, checkSizes, checkSpecNames, checkUnsupported } from './check-tables';
import {
  destinationFacts,
  selected,
  serverInfo,
  sourceFacts,
  specOf,
  databaseFacts,
} from './precheck-fixtures';

const full = specOf();
const incremental = specOf({ migrationTypes: { incremental: true } });
const schemaOnly = specOf({ migrationTypes: { schema: true, full: false } });

describe('checkKeys', () => {
  it.each([
    // primary key, unique key, replica identity, incremental -> level of the table's item (null: no item)
    [['id'], [], 'd', false, null],
    [['id'], [], 'd', true, null],
    [[], ['code'], 'd', false, null],
    [[], ['code'], 'd', true, 'failed'],
    [[], ['code'], 'i', true, null],
    [[], [], 'f', true, null],
    [[], [], 'd', false, 'alert'],
    [[], [], 'n', false, 'alert'],
    [[], [], 'd', true, 'failed'],
    [[], [], 'n', true, 'failed'],
    [['id'], [], 'n', false, null],
    [['id'], [], 'n', true, 'failed'],
  ])('pk %j, unique %j, replica identity %s, incremental %s -> %s', (pk, uniq, ri, inc, level) => {
    const t = selected('public', 't', { primaryKey: pk, uniqueNotNullKey: uniq, replicaIdentity: ri });
    const items = checkKeys(inc ? incremental : full, sourceFacts([t])).filter((i) => i.id !== 'keys');
    expect(items.map((i) => i.level)).toEqual(level ? [level] : []);
  });

  it('names the table, the risk and the exact ALTER statement', () => {
    const keyless = selected('Sales', 'Keyless Orders', { primaryKey: [] });
    const uniq = selected('Sales', 'uniq', { primaryKey: [], uniqueNotNullKey: ['code'] });
    const nothing = selected('Sales', 'nothing', { replicaIdentity: 'n' });
    const src = sourceFacts([keyless, uniq, nothing], {}, { 'Sales.uniq': { uniqueIndex: 'uniq_code_key' } });
    expect(checkKeys(full, src)).toEqual([
      {
        id: 'keys:"Sales"."Keyless Orders"',
        name: 'primary key',
        level: 'alert',
        object: '"Sales"."Keyless Orders"',
        message:
          '"Sales"."Keyless Orders" has no primary key or unique NOT NULL key: updates and deletes cannot be matched by key, and a retried load can duplicate rows; add a primary key, or run ALTER TABLE "Sales"."Keyless Orders" REPLICA IDENTITY FULL',
        fix: 'ALTER TABLE "Sales"."Keyless Orders" REPLICA IDENTITY FULL;',
      },
    ]);
    const risk =
      'incremental migration would not capture its updates and deletes (PostgreSQL logs no old key for them, and rejects UPDATE and DELETE on a published table without a replica identity)';
    expect(checkKeys(incremental, src).map((i) => [i.id, i.level, i.message, i.fix])).toEqual([
      [
        'keys:"Sales"."Keyless Orders"',
        'failed',
        `"Sales"."Keyless Orders" has no primary key or unique NOT NULL key and replica identity default: ${risk}; run ALTER TABLE "Sales"."Keyless Orders" REPLICA IDENTITY FULL, or add a primary key`,
        'ALTER TABLE "Sales"."Keyless Orders" REPLICA IDENTITY FULL;',
      ],
      [
        'keys:"Sales"."uniq"',
        'failed',
        `"Sales"."uniq" has no primary key (only the unique key "uniq_code_key") and replica identity default: ${risk}; run ALTER TABLE "Sales"."uniq" REPLICA IDENTITY USING INDEX "uniq_code_key"`,
        'ALTER TABLE "Sales"."uniq" REPLICA IDENTITY USING INDEX "uniq_code_key";',
      ],
      [
        'keys:"Sales"."nothing"',
        'failed',
        `"Sales"."nothing" has replica identity nothing: ${risk}; run ALTER TABLE "Sales"."nothing" REPLICA IDENTITY DEFAULT`,
        'ALTER TABLE "Sales"."nothing" REPLICA IDENTITY DEFAULT;',
      ],
    ]);
  });

  it('passes a selection where every table has a key', () => {
    expect(checkKeys(incremental, sourceFacts([selected('public', 'a'), selected('public', 'b')]))).toEqual([
      {
        id: 'keys',
        name: 'primary key',
        level: 'passed',
        message: 'every selected source table has a key and a replica identity (2 tables)',
      },
    ]);
  });
});

describe('checkSelection and checkSpecNames', () => {
  it('fails each spec path that names a missing object, and alerts on an empty selection', () => {
    const problems = [
      {
        path: 'objects.include[0].tables[1]',
        message: 'table "public"."nope" does not exist on the source (names are case-sensitive)',
      },
      {
        path: 'objects.include[1].schema',
        message: 'schema "Nope" does not exist on the source (names are case-sensitive)',
      },
    ];
    expect(checkSelection(sourceFacts([], { selection: { tables: [], problems } }))).toEqual([
      {
        id: 'selection:objects.include[0].tables[1]',
        name: 'selection',
        level: 'failed',
        object: 'objects.include[0].tables[1]',
        message:
          'objects.include[0].tables[1]: table "public"."nope" does not exist on the source (names are case-sensitive)',
        fix: 'correct or remove objects.include[0].tables[1] in the task spec',
      },
      expect.objectContaining({ id: 'selection:objects.include[1].schema', level: 'failed' }),
    ]);
    expect(checkSelection(sourceFacts([])).map((i) => i.level)).toEqual(['alert']);
    expect(checkSelection(sourceFacts([selected('public', 't')]))[0].message).toBe(
      '1 table selected on the source',
    );
  });

  it('fails names holding a NUL character before they reach the server', () => {
    const items = checkSpecNames({
      include: [{ schema: 'public', tables: ['ok', 'b\0ad'], renameTables: { ok: 'x\0' } }],
      exclude: [{ schema: 's\0' }],
    });
    expect(items.map((i) => i.id)).toEqual([
      'names:objects.include[0].tables[1]',
      'names:objects.include[0].renameTables',
      'names:objects.exclude[0].schema',
    ]);
    expect(items[0].message).toBe(
      'objects.include[0].tables[1]: a PostgreSQL name cannot contain a NUL character; correct it in the task spec',
    );
    expect(checkSpecNames({ include: [{ schema: 'línea "表"' }] })).toEqual([]);
  });
});

describe('checkLogicalDecoding', () => {
  it('needs logical decoding for full data too (its snapshot comes from a slot), not for schema only', () => {
    const src = sourceFacts([], { info: serverInfo({ walLevel: 'replica' }) });
    expect(checkLogicalDecoding(schemaOnly, src)).toEqual([]);
    expect(checkLogicalDecoding(full, src)).toEqual([
      {
        id: 'logical:wal_level',
        name: 'wal_level',
        level: 'failed',
        message:
          'source has wal_level = replica; set wal_level = logical (ALTER SYSTEM SET wal_level = logical) and restart the server',
        fix: 'ALTER SYSTEM SET wal_level = logical;\n-- then restart the server',
        object: undefined,
      },
    ]);
  });

  it('needs no free slot when the task slot exists, and refuses a standby before PostgreSQL 16', () => {
    const info = serverInfo({
      maxReplicationSlots: 2,
      usedReplicationSlots: 2,
      canReplicate: false,
      user: 'app "ro"',
    });
    const slot = {
      name: 'pgferry_orders',
      type: 'logical',
      plugin: 'pgoutput',
      database: 'app',
      activePid: null,
      confirmedLsn: '0/1',
    };
    expect(checkLogicalDecoding(incremental, sourceFacts([], { info })).map((i) => [i.id, i.fix])).toEqual([
      ['logical:slots', 'ALTER SYSTEM SET max_replication_slots = 3;\n-- then restart the server'],
      ['logical:replication', 'ALTER ROLE "app ""ro""" REPLICATION;'],
    ]);
    expect(checkLogicalDecoding(incremental, sourceFacts([], { info, slot })).map((i) => i.id)).toEqual([
      'logical:replication',
    ]);
    const standby = sourceFacts([], { db: databaseFacts({ inRecovery: true }) });
    expect(checkLogicalDecoding(full, standby).map((i) => [i.id, i.level])).toEqual([
      ['logical:standby', 'failed'],
    ]);
    expect(checkLogicalDecoding(full, sourceFacts([]))).toEqual([
      expect.objectContaining({ id: 'logical', level: 'passed' }),
    ]);
  });
});

describe('checkTaskSlot', () => {
  const slot = {
    name: 'pgferry_orders',
    type: 'logical',
    plugin: 'pgoutput',
    database: 'app',
    activePid: null,
    confirmedLsn: '0/16B3748',
  };
  const recorded = destinationFacts({ controlTask: { slotName: 'pgferry_orders' } });
  const level = (src: ReturnType<typeof sourceFacts>, dst = destinationFacts()) =>
    checkTaskSlot(incremental, src, dst)?.level;

  it('passes a free name and a slot this task recorded (it resumes), fails any other slot of the name', () => {
    expect(checkTaskSlot(schemaOnly, sourceFacts([], { slot }), recorded)).toBeNull();
    expect(level(sourceFacts([]))).toBe('passed');
    expect(checkTaskSlot(incremental, sourceFacts([], { slot }), recorded)).toEqual({
      id: 'slot:pgferry_orders',
      name: 'replication slot',
      object: 'pgferry_orders',
      level: 'passed',
      message:
        'replication slot pgferry_orders already exists on the source and the destination records it for task orders (an earlier run): the task resumes with it instead of creating a new slot and snapshot, and streams the changes after its confirmed position 0/16B3748; to start over instead, drop the slot with SELECT pg_drop_replication_slot(\'pgferry_orders\') and delete the task from "pgferry"."tasks" on the destination',
      fix: 'nothing to do to resume; to start over instead:\nSELECT pg_drop_replication_slot(\'pgferry_orders\'); -- on the source\nDELETE FROM "pgferry"."tasks" WHERE task = \'orders\'; -- on the destination',
    });
    const unrecorded = checkTaskSlot(incremental, sourceFacts([], { slot }), destinationFacts());
    expect(unrecorded?.level).toBe('failed');
    expect(unrecorded?.message).toContain('but no task orders on this destination records it');
    expect(level(sourceFacts([], { slot: { ...slot, activePid: 4242 } }), recorded)).toBe('failed');
    expect(level(sourceFacts([], { slot: { ...slot, plugin: 'wal2json' } }), recorded)).toBe('failed');
    expect(level(sourceFacts([], { slot: { ...slot, database: 'other' } }), recorded)).toBe('failed');
    expect(level(sourceFacts([], { slot: { ...slot, type: 'physical', plugin: null } }), recorded)).toBe(
      'failed',
    );
  });

  it('fails a recorded slot the source invalidated, saying how to start over', () => {
    const lost = checkTaskSlot(
      incremental,
      sourceFacts([], { slot: { ...slot, walStatus: 'lost' } }),
      recorded,
    );
    expect(lost?.level).toBe('failed');
    expect(lost?.message).toMatch(
      /the source invalidated it \(wal_status lost\).*cannot resume; start over: pgferry release/,
    );
    expect(lost?.fix).toContain(`DELETE FROM "pgferry"."tasks" WHERE task = 'orders';`);
    expect(level(sourceFacts([], { slot: { ...slot, walStatus: 'reserved' } }), recorded)).toBe('passed');
  });
});

describe('checkSourcePrivileges', () => {
  const orders = selected('Sales', 'Orders');
  const items = selected('Sales', 'items');

  it('names each missing privilege with its GRANT, grouping unowned tables by owner', () => {
    const src = sourceFacts(
      [orders, items],
      { db: databaseFacts({ canCreate: false }), info: serverInfo({ user: 'app "ro"' }) },
      {
        'Sales.Orders': {
          canSelect: false,
          ownedByUser: false,
          owner: 'Owner',
          ownedSequences: [{ schema: 'Sales', name: 'Orders_id_seq', canSelect: false }],
        },
        'Sales.items': { ownedByUser: false, owner: 'Owner' },
      },
    );
    const result = checkSourcePrivileges(incremental, src);
    expect(result.map((i) => [i.id, i.fix])).toEqual([
      [
        'privileges:source:select:"Sales"."Orders"',
        'GRANT SELECT ON TABLE "Sales"."Orders" TO "app ""ro""";',
      ],
      ['privileges:source:create', 'GRANT CREATE ON DATABASE "app" TO "app ""ro""";'],
      ['privileges:source:owner:"Owner"', 'GRANT "Owner" TO "app ""ro""";'],
      [
        'privileges:source:sequence:"Sales"."Orders_id_seq"',
        'GRANT SELECT ON SEQUENCE "Sales"."Orders_id_seq" TO "app ""ro""";',
      ],
    ]);
    expect(result[0].message).toBe(
      'source user "app ""ro""" lacks SELECT on table "Sales"."Orders": the schema dump locks it and the snapshot reads its rows; grant it',
    );
    expect(result[2].message).toBe(
      'source user "app ""ro""" does not own 2 tables "Sales"."Orders", "Sales"."items" (owner "Owner"): incremental migration publishes them with CREATE PUBLICATION ... FOR TABLE, which PostgreSQL allows only to the owner; make the user a member of the owner role, or run the task as a superuser',
    );
    expect(checkSourcePrivileges(full, src).map((i) => i.id)).toEqual([
      'privileges:source:select:"Sales"."Orders"',
    ]);
  });

  it('checks CONNECT and schema USAGE, and passes a user that has everything', () => {
    const src = sourceFacts([orders], {
      db: databaseFacts({ canConnect: false }),
      schemaUsage: new Map([['Sales', false]]),
    });
    expect(checkSourcePrivileges(full, src).map((i) => [i.id, i.fix])).toEqual([
      ['privileges:source:connect', 'GRANT CONNECT ON DATABASE "app" TO "app";'],
      ['privileges:source:usage:"Sales"', 'GRANT USAGE ON SCHEMA "Sales" TO "app";'],
    ]);
    expect(checkSourcePrivileges(incremental, sourceFacts([orders]))).toEqual([
      {
        id: 'privileges:source',
        name: 'source privileges',
        level: 'passed',
        message:
          'source user "app" has CONNECT on "app", USAGE on 1 schema, SELECT on 1 table, CREATE on the database, ownership of the published tables',
      },
    ]);
  });
});

describe('checkUnsupported and checkSizes', () => {
  it('alerts on large objects and, with incremental, unlogged tables; notes generated columns and sequences', () => {
    const t = selected('public', 't', { estimatedRows: 1234567, bytes: 20 * 1024 ** 3 });
    const src = sourceFacts(
      [t],
      { largeObjects: 3 },
      {
        'public.t': {
          unlogged: true,
          generatedColumns: ['total'],
          ownedSequences: [{ schema: 'public', name: 't_id_seq', canSelect: true }],
        },
      },
    );
    expect(checkUnsupported(incremental, src).map((i) => [i.id, i.level])).toEqual([
      ['large-objects', 'alert'],
      ['unlogged:"public"."t"', 'alert'],
      ['generated:"public"."t"', 'passed'],
      ['sequences', 'passed'],
    ]);
    expect(checkUnsupported(full, src)[1].level).toBe('passed');
    expect(checkUnsupported(full, sourceFacts([t]))).toEqual([
      {
        id: 'large-objects',
        name: 'large objects',
        level: 'passed',
        message: 'the source database holds no large objects',
      },
    ]);
    expect(checkSizes(src).message).toBe(
      '1 table, about 1,234,567 rows and 20 GB on the source (estimates from the statistics, including indexes and TOAST)',
    );
  });
});
