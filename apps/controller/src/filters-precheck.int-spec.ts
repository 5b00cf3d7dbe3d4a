import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { captureOutput, startPostgres, type PgCluster } from '@pgferry/testing';
import { runMigrate } from './migrate-command';

/**
 * Bad row filters, column lists and name cases (docs/filters.md) are refused by the precheck,
 * each naming the table and the fix, and migrate writes nothing on either server.
 */
describe('pgferry migrate: the precheck refuses bad filters, column lists and name cases', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-filters-precheck-'));
  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('names each bad filter, column list, replica identity and collision, and writes nothing', async () => {
    const name = 'badfilters';
    await Promise.all([source.createDatabase(name), destination.createDatabase(name)]);
    await source.query(
      `CREATE SCHEMA s;
       CREATE TABLE s.syntax (id int PRIMARY KEY, region text);
       CREATE TABLE s.unknown (id int PRIMARY KEY, region text);
       CREATE TABLE s.escape (id int PRIMARY KEY, region text);
       CREATE TABLE s.volatile (id int PRIMARY KEY, created timestamptz);
       CREATE TABLE s.identity (id int PRIMARY KEY, region text);
       CREATE TABLE s.nokey (id int PRIMARY KEY, name text, note text);
       CREATE TABLE s.nocolumn (id int PRIMARY KEY, name text);
       CREATE TABLE s.full (id int PRIMARY KEY, name text, note text);
       ALTER TABLE s.full REPLICA IDENTITY FULL;
       CREATE TABLE s."Twice" (id int PRIMARY KEY);
       CREATE TABLE s.twice (id int PRIMARY KEY, "a" int, "A" int);`,
      [],
      name,
    );
    const spec = join(dir, `${name}.json`);
    writeFileSync(
      spec,
      JSON.stringify({
        name,
        source: { url: source.url(name) },
        destination: { url: destination.url(name) },
        migrationTypes: { incremental: true },
        objects: {
          nameCase: 'upper',
          include: [
            {
              schema: 's',
              where: {
                syntax: "region = = 'eu'",
                unknown: "regoin = 'eu'",
                escape: 'true) UNION SELECT (1',
                volatile: 'created < now()',
                identity: "region = 'eu'",
              },
              columns: { nokey: ['name', 'note'], nocolumn: ['id', 'nmae'], full: ['id', 'name'] },
            },
          ],
        },
      }),
    );
    const out = captureOutput();
    const done = await runMigrate({ spec, workDir: join(dir, name), inProcess: true, out: out.out });
    const text = out.text();
    expect(done.code).toBe(1);
    const failed = text.split('\n').filter((l) => l.startsWith('  FAILED'));
    const expected = [
      /"s"\."syntax" \(objects\.include\[\]\.where: "region = = 'eu'"\) is refused: it does not parse as one SQL expression \(syntax error at or near "="\); correct it/,
      /"s"\."unknown" \(objects\.include\[\]\.where: "regoin = 'eu'"\) is refused: column "regoin" does not exist/,
      /"s"\."escape" .* is refused: it is not one SQL expression/,
      /"s"\."volatile" .* is refused: it calls "now", and a publication row filter may call only built-in immutable functions/,
      /the row filter of "s"\."identity" reads "region", outside its replica identity \("id"\): .* refuse UPDATE and DELETE on "s"\."identity" .*; run ALTER TABLE "s"\."identity" REPLICA IDENTITY FULL/,
      /the column list of "s"\."nokey" \(objects\.include\[\]\.columns\) leaves out its key column\(s\) "id": .* add them to the list/,
      /the column list of "s"\."nocolumn" \(objects\.include\[\]\.columns\) names "nmae", which "s"\."nocolumn" does not have \(it has "id", "name"\); correct the list/,
      /"s"\."full" has REPLICA IDENTITY FULL and a column list .* give "s"\."full" REPLICA IDENTITY DEFAULT/,
      /objects\.include: "s"\."Twice" and "s"\."twice" would both become "S"\."TWICE"/,
      /objects\.nameCase upper makes the columns "a" and "A" of "s"\."twice" one name, "A", on the destination; rename one of them on the source, or set objects\.nameCase: source/,
    ];
    // On a miss the received value is every failed line, so the report shows what was said.
    for (const e of expected)
      expect(failed.find((l) => e.test(l)) ?? failed).toEqual(expect.stringMatching(e));
    expect(failed).toHaveLength(expected.length);
    expect(text).toMatch(
      /name case +objects\.nameCase upper gives the destination other names than the source's, and schema changes on 10 selected tables are replayed on the destination as the source ran them/,
    );
    expect(text).toContain('nothing was written');
    // Nothing on either server: no slot, publication or event trigger on the source, no
    // control schema or migrated schema on the destination.
    const q = (c: PgCluster, sql: string) => c.query(sql, [], name);
    expect(
      await q(
        source,
        `SELECT (SELECT count(*)::int FROM pg_replication_slots) AS slots, (SELECT count(*)::int FROM pg_publication) AS pubs,
                (SELECT count(*)::int FROM pg_event_trigger) AS triggers`,
      ),
    ).toEqual([{ slots: 0, pubs: 0, triggers: 0 }]);
    expect(
      await q(
        destination,
        `SELECT nspname FROM pg_namespace WHERE nspname IN ('pgferry', 'S', 's') ORDER BY 1`,
      ),
    ).toEqual([]);
  }, 120_000);
});
