import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureOutput, startPostgres, type PgCluster } from '@pgferry/testing';
import { runMigrate } from './migrate-command';

/**
 * Bad transforms are refused by the precheck, each as a failed item naming the table, the column
 * and the fix, and migrate writes nothing (no schema, no control schema on the destination).
 */
describe('transforms: the precheck refuses bad transforms before anything is written', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-transforms-precheck-'));
  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
    await Promise.all([source.createDatabase('shop'), destination.createDatabase('shop')]);
    await source.query(
      `CREATE SCHEMA sales;
       CREATE TABLE sales.customers (id int PRIMARY KEY, name text, email text, country text, score int);
       CREATE TABLE sales.notes (body text);
       INSERT INTO sales.customers VALUES (1, 'a', 'a@x', 'de', 1)`,
      [],
      'shop',
    );
    writeFileSync(join(dir, 'not-a-function.js'), 'module.exports = { transform: 1 };\n');
    writeFileSync(join(dir, 'broken.js'), 'module.exports = (row => row;\n');
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  async function refused(transforms: unknown[], more: Record<string, unknown> = {}): Promise<string> {
    const spec = join(dir, 'shop.json');
    writeFileSync(
      spec,
      JSON.stringify({
        name: 'shop',
        source: { url: source.url('shop') },
        destination: { url: destination.url('shop') },
        objects: { include: [{ schema: 'sales', tables: ['customers'] }] },
        transforms,
        ...more,
      }),
    );
    const out = captureOutput();
    const { code } = await runMigrate({ spec, workDir: join(dir, 'work'), inProcess: true, out: out.out });
    expect(code).toBe(1);
    expect(out.text()).toContain('nothing was written');
    const rows = await destination.query(
      `SELECT nspname FROM pg_namespace WHERE nspname IN ('sales', 'pgferry')`,
      [],
      'shop',
    );
    expect(rows).toEqual([]);
    return out.text();
  }

  it.each([
    [
      'an unknown column',
      [{ table: 'sales.customers', drop: ['nope'] }],
      'transforms sales.customers: drop names column "nope", which sales.customers does not have (it has id, name, email, country, score): correct the name',
    ],
    [
      'a table the task does not select',
      [{ table: 'sales.notes', drop: ['body'] }],
      'transforms sales.notes: transforms names table sales.notes, which the task does not select on the source',
    ],
    [
      'a dropped key column',
      [{ table: 'sales.customers', drop: ['id'] }],
      'transforms sales.customers: drop names key column "id" of sales.customers: the key identifies each row on the destination; keep it (rename it if it needs another name)',
    ],
    [
      'a masked key column',
      [{ table: 'sales.customers', mask: { id: 'sha256' } }],
      'transforms sales.customers: mask names key column "id" of sales.customers',
    ],
    [
      'a rename onto another column',
      [{ table: 'sales.customers', rename: { name: 'email' } }],
      'transforms sales.customers: sales.customers would have two destination columns named "email"',
    ],
    [
      'an expression that does not parse',
      [{ table: 'sales.customers', add: { code: 'upper(country' } }],
      'transforms sales.customers: add code: "upper(country" does not parse: syntax error at end of input',
    ],
    [
      'an expression that reaches outside its parentheses',
      [
        {
          table: 'sales.customers',
          add: { code: '1 FROM sales.customers; DROP TABLE sales.customers; SELECT 1' },
        },
      ],
      'is not one SQL expression (it reaches outside its parentheses)',
    ],
    [
      'an expression over a column the table does not have',
      [{ table: 'sales.customers', add: { code: 'upper(land)' } }],
      'transforms sales.customers: add code: the source refuses "upper(land)" over "sales"."customers": column "land" does not exist',
    ],
    [
      'a filter that is not boolean',
      [{ table: 'sales.customers', filter: 'score + 1' }],
      'transforms sales.customers: filter: the source refuses "score + 1" over "sales"."customers": argument of WHERE must be type boolean, not type integer',
    ],
    [
      'an aggregate',
      [{ table: 'sales.customers', add: { total: 'sum(score)' } }],
      'transforms sales.customers: add total: "sum(score)" aggregates rows',
    ],
  ])('%s', async (_, transforms, message) => {
    expect(await refused(transforms)).toContain(message);
  });

  it('a module that does not load, and one that exports no function', async () => {
    const text = await refused([{ table: 'sales.customers', module: join(dir, 'broken.js') }]);
    expect(text).toContain(`transforms sales.customers: module ${join(dir, 'broken.js')} does not load (`);
    const other = await refused([{ table: 'sales.customers', module: join(dir, 'not-a-function.js') }]);
    expect(other).toContain(
      `transforms sales.customers: module ${join(dir, 'not-a-function.js')} does not export a function: export (row, op) => row | null as module.exports or exports.default`,
    );
  });

  it('a streamed transformed table whose updates may leave a TOASTed value out: an alert naming the fix', async () => {
    const text = await refused([{ table: 'sales.customers', drop: ['email'] }], {
      migrationTypes: { incremental: true },
    });
    expect(text).toContain(
      'transforms sales.customers: an UPDATE that leaves a large (TOASTed) value of "name", "email", "country" unchanged sends the row without it',
    );
    expect(text).toContain('fix: ALTER TABLE "sales"."customers" REPLICA IDENTITY FULL;');
  });
});
