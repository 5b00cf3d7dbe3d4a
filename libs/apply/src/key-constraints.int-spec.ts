import type { Client } from 'pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import type { DeferredKey } from './pg-row-applier';
import { buildDeferredKeys } from './key-constraints';

describe('buildDeferredKeys: the keys left for after the load', () => {
  let pg: PgCluster;
  beforeAll(async () => {
    pg = await startPostgres();
  });
  afterAll(async () => {
    await pg?.stop();
  });

  /** Destination connections that report their maintenance_work_mem as they are ended. */
  function connections(db: string, seen: string[]) {
    return async (): Promise<Client> => {
      const c = await pg.connect(db);
      const end = c.end.bind(c);
      c.end = (async () => {
        seen.push((await c.query('SHOW maintenance_work_mem')).rows[0].maintenance_work_mem);
        return end();
      }) as Client['end'];
      return c;
    };
  }

  const key = (table: string): DeferredKey => ({
    target: `public."${table}"`,
    key: ['id'],
    sourceTable: `public."${table}"`,
    sql: `ALTER TABLE public."${table}" ADD CONSTRAINT "${table}_pkey" PRIMARY KEY (id)`,
  });

  it('builds each key once, with maintenance_work_mem raised to the option but never lowered', async () => {
    await pg.createDatabase('keys');
    const c = await pg.connect('keys');
    try {
      for (const t of ['a', 'b', 'c'])
        await c.query(
          `CREATE TABLE public."${t}" (id int, v text); INSERT INTO public."${t}" SELECT g, 'v' FROM generate_series(1, 1000) g`,
        );
      const seen: string[] = [];
      const events: string[] = [];
      const onKey = (t: string, ms?: number) =>
        events.push(`${t} ${ms === undefined ? 'building' : 'built'}`);
      const built = await buildDeferredKeys(connections('keys', seen), [key('a'), key('b')], 2, onKey, 300);
      expect(built).toBe(2);
      expect(seen).toEqual(['300MB', '300MB']);
      expect(events.sort()).toEqual([
        'public."a" building',
        'public."a" built',
        'public."b" building',
        'public."b" built',
      ]);
      const { rows } = await c.query(
        `SELECT conrelid::regclass::text AS t FROM pg_constraint WHERE contype = 'p' AND connamespace = 'public'::regnamespace ORDER BY 1`,
      );
      expect(rows.map((r) => r.t)).toEqual(['a', 'b']);
      // Built already: nothing to do, whatever the memory.
      expect(await buildDeferredKeys(connections('keys', []), [key('a')], 1, undefined, 300)).toBe(0);

      // A destination whose own setting is higher keeps it; 0 keeps the server's setting.
      await c.query(`ALTER DATABASE keys SET maintenance_work_mem = '1GB'`);
      const higher: string[] = [];
      expect(await buildDeferredKeys(connections('keys', higher), [key('c')], 1, undefined, 300)).toBe(1);
      expect(higher).toEqual(['1GB']);
      await c.query(
        `ALTER DATABASE keys RESET maintenance_work_mem; ALTER TABLE public."c" DROP CONSTRAINT "c_pkey"`,
      );
      const kept: string[] = [];
      expect(await buildDeferredKeys(connections('keys', kept), [key('c')], 1)).toBe(1);
      expect(kept).toEqual(['64MB']);
    } finally {
      await c.end();
    }
  });
});
