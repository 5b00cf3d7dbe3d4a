import type { ObjectIdentity } from './schema-catalog';
import { countByKind, planSchema, withoutExisting, type PlanInputs } from './schema-plan';
import { parseTocListing } from './toc';

/** pg_restore -l -v lines (pg_dump 15) of a source with an extension, a C function and an ACL. */
const PRE = parseTocListing(`3451; 1262 5 DATABASE - src src
3452; 0 0 COMMENT - DATABASE src src
;	depends on: 3451
8; 2615 16385 SCHEMA - app postgres
2; 3079 16450 EXTENSION - pg_trgm 
3453; 0 0 COMMENT - EXTENSION pg_trgm 
;	depends on: 2
229; 1255 16447 FUNCTION app cfunc() postgres
;	depends on: 8
3454; 0 0 COMMENT app FUNCTION cfunc() postgres
;	depends on: 229
230; 1255 16448 FUNCTION app uses_c() postgres
;	depends on: 8 229
219; 1259 16400 TABLE app customers postgres
;	depends on: 8
3455; 0 0 ACL app TABLE customers postgres
;	depends on: 219
228; 1259 16539 TABLE app sim postgres
;	depends on: 2 8
`);
const POST = parseTocListing(`3291; 2606 16408 CONSTRAINT app customers customers_pkey postgres
;	depends on: 219
3294; 1259 16538 INDEX app customers_trgm postgres
;	depends on: 219 2 2 2
3299; 2620 16435 TRIGGER app customers trg postgres
;	depends on: 219 230
`);

const id = (type: string, identity: string, names: string[]): ObjectIdentity => ({
  type,
  identity,
  names,
  args: [],
});
const IDENTITIES = new Map<number, ObjectIdentity>([
  [8, id('schema', 'app', ['app'])],
  [2, id('extension', 'pg_trgm', ['pg_trgm'])],
  [229, id('function', 'app.cfunc()', ['app', 'cfunc'])],
  [230, id('function', 'app.uses_c()', ['app', 'uses_c'])],
  [219, id('table', 'app.customers', ['app', 'customers'])],
  [228, id('table', 'app.sim', ['app', 'sim'])],
  [3291, id('table constraint', 'customers_pkey on app.customers', ['app', 'customers', 'customers_pkey'])],
  [3294, id('index', 'app.customers_trgm', ['app', 'customers_trgm'])],
  [3299, id('trigger', 'trg on app.customers', ['app', 'customers', 'trg'])],
]);

const inputs = (overrides: Partial<PlanInputs> = {}): PlanInputs => ({
  preData: PRE,
  postData: POST,
  identities: IDENTITIES,
  cFunctions: [{ oid: 16447, identity: 'app.cfunc()', library: '$libdir/mylib' }],
  availableExtensions: new Set(['pg_trgm', 'plpgsql']),
  restorePrivileges: false,
  ...overrides,
});

describe('planSchema', () => {
  it('leaves out C functions and what depends on them, with an alert each', () => {
    const plan = planSchema(inputs());
    expect(plan.preData.map((e) => e.object)).toEqual([
      'schema app',
      'extension pg_trgm',
      'COMMENT EXTENSION pg_trgm',
      'table app.customers',
      'table app.sim',
    ]);
    expect(plan.postData.map((e) => e.object)).toEqual([
      'table constraint customers_pkey on app.customers',
      'index app.customers_trgm',
    ]);
    expect(plan.skipped.map((s) => [s.object, s.reason])).toEqual([
      ['DATABASE src', 'database-level property of the source database; not migrated'],
      ['COMMENT DATABASE src', 'database-level property of the source database; not migrated'],
      ['function app.cfunc()', 'C-language function (library $libdir/mylib) outside an extension'],
      ['COMMENT FUNCTION cfunc() in schema app', 'depends on function app.cfunc(), which is not restored'],
      ['function app.uses_c()', 'depends on function app.cfunc(), which is not restored'],
      ['ACL TABLE customers in schema app', 'privileges are not restored (restoreOwnership is off)'],
      ['trigger trg on app.customers', 'depends on function app.uses_c(), which is not restored'],
    ]);
    expect(plan.alerts).toEqual([
      {
        item: 'C-language function',
        level: 'alert',
        object: 'app.cfunc()',
        message:
          'function app.cfunc() is written in C (library $libdir/mylib) and does not belong to an extension, so it is not restored: install its shared library on the destination server and create the function there, or drop it from the source',
      },
      {
        item: 'dependent object',
        level: 'alert',
        object: 'function app.uses_c()',
        message:
          'function app.uses_c() depends on function app.cfunc(), which is not restored, so it is not restored either; resolve the alert for function app.cfunc() and run the schema migration again',
      },
      expect.objectContaining({ item: 'dependent object', object: 'trigger trg on app.customers' }),
    ]);
  });

  it('leaves out an extension the destination cannot install, and the objects using it', () => {
    const plan = planSchema(inputs({ availableExtensions: new Set(['plpgsql']), cFunctions: [] }));
    expect(plan.alerts.map((a) => [a.item, a.object])).toEqual([
      ['extension', 'extension pg_trgm'],
      ['dependent object', 'table app.sim'],
      ['dependent object', 'index app.customers_trgm'],
    ]);
    expect(plan.alerts[0].message).toBe(
      "extension pg_trgm is not available on the destination server, so it is not restored: install the package that provides it on the destination server (contrib modules: the postgresql-contrib package of the server's version), or drop the extension and the objects that use it from the source",
    );
    expect(plan.skipped.map((s) => s.object)).toContain('COMMENT EXTENSION pg_trgm');
    expect(plan.postData.map((e) => e.kind)).toEqual(['CONSTRAINT', 'TRIGGER']);
  });

  it('keeps privileges when asked to', () => {
    const plan = planSchema(inputs({ restorePrivileges: true }));
    expect(plan.preData.map((e) => e.kind)).toContain('ACL');
  });

  it('carries lines, dependencies and identities for the restore steps', () => {
    const [, , , customers] = planSchema(inputs()).preData;
    expect(customers).toEqual({
      dumpId: 219,
      section: 'pre-data',
      kind: 'TABLE',
      object: 'table app.customers',
      line: '219; 1259 16400 TABLE app customers postgres',
      dependencies: [8],
      identity: IDENTITIES.get(219),
    });
  });
});

describe('withoutExisting', () => {
  it('leaves out existing objects and their comments, not their other dependents', () => {
    const plan = planSchema(inputs());
    const { restore, skipped } = withoutExisting(plan.preData, new Set([2]), 'exists; reused');
    expect(skipped.map((s) => s.object)).toEqual(['extension pg_trgm', 'COMMENT EXTENSION pg_trgm']);
    expect(restore.map((e) => e.object)).toEqual(['schema app', 'table app.customers', 'table app.sim']);
  });
});

describe('countByKind', () => {
  it('counts per kind', () => {
    expect(countByKind([{ kind: 'TABLE' }, { kind: 'INDEX' }, { kind: 'TABLE' }])).toEqual({
      TABLE: 2,
      INDEX: 1,
    });
  });
});
