import { Client } from 'pg';
import { startPostgres, type PgCluster } from '@pgferry/testing';
import { applyDdl, applyDdlOnce, installDdlCapture, readDdlEvents, removeDdlCapture } from '@pgferry/capture';
import { ensureControlSchema } from '@pgferry/control';

const SCHEMA = `CREATE SCHEMA "Shop Ü"; CREATE TABLE "Shop Ü".orders (id int PRIMARY KEY, note text);
  CREATE SCHEMA other; CREATE TABLE other.t (id int)`;

async function columns(pg: PgCluster, db?: string) {
  return pg.query(
    `SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns
      WHERE table_schema IN ('Shop Ü', 'other') ORDER BY 1, 2, ordinal_position`,
    [],
    db,
  );
}

describe('DDL capture and apply', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let src: Client;
  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres(), startPostgres()]);
    await Promise.all([source.query(SCHEMA), destination.query(SCHEMA)]);
    src = await source.connect();
  });
  afterAll(async () => {
    await src?.end();
    await Promise.all([source?.stop(), destination?.stop()]);
  });

  /** A connection to the source as a new role that may create tables in "Shop Ü" (not a superuser). */
  async function connectAsNewRole(name: string): Promise<Client> {
    await source.query(
      `CREATE ROLE ${name} LOGIN PASSWORD 'pw'; GRANT CREATE, USAGE ON SCHEMA "Shop Ü" TO ${name}`,
    );
    const client = new Client({
      host: source.host,
      port: source.port,
      user: name,
      password: 'pw',
      database: 'postgres',
    });
    await client.connect();
    return client;
  }

  it('records DDL on selected schemas once per statement, by any role, and the destination ends with the same columns', async () => {
    await installDdlCapture(src, 'shop', ['Shop Ü']);
    await installDdlCapture(src, 'shop', ['Shop Ü']); // idempotent
    await source.query(`ALTER TABLE "Shop Ü".orders ADD COLUMN total numeric(12,2) DEFAULT 0`);
    await source.query(`ALTER TABLE "Shop Ü".orders RENAME COLUMN note TO "Customer Note"`);
    await source.query(
      `SET search_path = "Shop Ü"; ALTER TABLE orders ALTER COLUMN total TYPE numeric(14,2); CREATE TABLE items (id serial PRIMARY KEY, sku text)`,
    );
    await source.query(`ALTER TABLE other.t ADD COLUMN ignored int`);
    const owner = await connectAsNewRole('owner_role');
    try {
      await owner.query(`CREATE TABLE "Shop Ü".by_owner (id int)`);
      await owner.query(`DROP TABLE "Shop Ü".by_owner`);
    } finally {
      await owner.end();
    }

    const events = await readDdlEvents(src, 'shop');
    expect(events.map((e) => [e.tag, e.ordinal, e.nested])).toEqual([
      ['ALTER TABLE', 1, false],
      ['ALTER TABLE', 1, false],
      // One row per statement of the multi-statement string, each with the whole string.
      ['ALTER TABLE', 1, false],
      ['CREATE TABLE', 1, false],
      ['CREATE TABLE', 1, false],
      ['DROP TABLE', 1, false],
    ]);
    expect(events[3].command).toBe(events[2].command);
    expect(events[3].command).toContain('CREATE TABLE items');
    // The path the session's search_path resolved to, quoted: unqualified names resolve the same.
    expect(events[2].searchPath).toBe('"Shop Ü"');
    for (const e of events) await applyDdl(await destinationClient(), e, { objects: {} }, null);
    expect(await columns(destination)).toEqual(
      (await columns(source)).filter((c) => c.column_name !== 'ignored'),
    );
  });

  it('refuses a statement on a renamed schema and stops on a statement that fails, quoting it', async () => {
    const [first] = await readDdlEvents(src, 'shop');
    await expect(
      applyDdl(
        await destinationClient(),
        first,
        { objects: { include: [{ schema: 'Shop Ü', renameTo: 'shop' }] } },
        null,
      ),
    ).rejects.toThrow(
      'cannot apply ALTER TABLE (source transaction ' +
        first.txid +
        ', statement: ALTER TABLE "Shop Ü".orders ADD COLUMN total numeric(12,2) DEFAULT 0) on the destination: schema "Shop Ü" is renamed to "shop" on the destination (objects.include[0].renameTo) and pgferry does not rewrite statements',
    );
    // Applying it again fails on the destination (the column exists): stop, never skip.
    await expect(applyDdl(await destinationClient(), first, { objects: {} }, null)).rejects.toThrow(
      /column "total" of relation "orders" already exists; the task stops here and does not skip it/,
    );
  });

  it('replays only the statement of a multi-statement string the trigger reported, never the DML beside it', async () => {
    const before = (await readDdlEvents(src, 'shop')).length;
    // One simple-protocol query: the INSERT must reach the destination through the stream only.
    await source.query(
      `ALTER TABLE "Shop Ü".orders ADD COLUMN once int; INSERT INTO "Shop Ü".orders (id, once) VALUES (1, 1); ALTER TABLE "Shop Ü".orders ADD COLUMN twice int`,
    );
    const events = (await readDdlEvents(src, 'shop')).slice(before);
    expect(events.map((e) => [e.tag, e.ordinal])).toEqual([
      ['ALTER TABLE', 1],
      ['ALTER TABLE', 2],
    ]);
    for (const e of events) await applyDdl(await destinationClient(), e, { objects: {} }, null);
    expect(
      (await columns(destination))
        .filter((c) => ['once', 'twice'].includes(c.column_name as string))
        .map((c) => c.column_name),
    ).toEqual(['once', 'twice']);
    expect(await destination.query(`SELECT id FROM "Shop Ü".orders`)).toEqual([]);
  });

  it('refuses a schema change made inside a DO block with the statement and how to go on, and passes it over once recorded as applied by hand', async () => {
    const before = (await readDdlEvents(src, 'shop')).length;
    const block = `DO $$ BEGIN EXECUTE 'ALTER TABLE "Shop Ü".orders ADD COLUMN by_block int'; INSERT INTO "Shop Ü".orders (id) VALUES (2); END $$`;
    await source.query(block);
    const [event] = (await readDdlEvents(src, 'shop')).slice(before);
    expect([event.tag, event.nested]).toEqual(['ALTER TABLE', true]);
    const d = await destinationClient();
    await ensureControlSchema(d);
    await d.query(`INSERT INTO pgferry.tasks (task, spec) VALUES ('shop', '{}') ON CONFLICT DO NOTHING`);
    const refused = applyDdlOnce(d, 'shop', event, { objects: {} });
    const hand = `INSERT INTO pgferry.ddl_applied (task, ddl_id, command) VALUES ('shop', ${event.id}, 'applied by hand')`;
    await expect(refused).rejects.toThrow(
      `cannot apply ALTER TABLE (source transaction ${event.txid}, statement: ${block}) on the destination: the ALTER TABLE ran inside a function, procedure, DO block or trigger called by the statement, and pgferry replays only statements sent as they are (running the caller again would repeat whatever else it did); apply it by hand on the destination, then record it as applied there with \`${hand}\` and restart the task`,
    );
    expect((await columns(destination)).some((c) => c.column_name === 'by_block')).toBe(false);
    expect(await destination.query(`SELECT id FROM "Shop Ü".orders`)).toEqual([]);
    await destination.query(`ALTER TABLE "Shop Ü".orders ADD COLUMN by_block int; ${hand}`);
    expect(await applyDdlOnce(d, 'shop', event, { objects: {} })).toBe(false);
  });

  it('runs a replayed statement as the configured role', async () => {
    await destination.query(
      `CREATE ROLE ddl_limited NOLOGIN; GRANT USAGE, CREATE ON SCHEMA "Shop Ü" TO ddl_limited`,
    );
    const before = (await readDdlEvents(src, 'shop')).length;
    await source.query(`CREATE TABLE "Shop Ü".by_role (id int PRIMARY KEY)`);
    const [event] = (await readDdlEvents(src, 'shop')).slice(before);
    await applyDdl(await destinationClient(), event, { objects: {}, role: 'ddl_limited' }, null);
    expect(
      await destination.query(
        `SELECT tableowner FROM pg_tables WHERE schemaname = 'Shop Ü' AND tablename = 'by_role'`,
      ),
    ).toEqual([{ tableowner: 'ddl_limited' }]);
  });

  it('installs and records for a schema whose name holds the dollar quote of the trigger body', async () => {
    const odd = `we$pgferry$ird'; --`;
    await source.query(`CREATE SCHEMA "${odd}"`);
    await installDdlCapture(src, 'dollar', [odd]);
    await source.query(`CREATE TABLE "${odd}".t (id int)`);
    expect((await readDdlEvents(src, 'dollar')).map((e) => [e.tag, e.schemas])).toEqual([
      ['CREATE TABLE', [odd]],
    ]);
    await removeDdlCapture(src, 'dollar');
    await source.query(`DROP SCHEMA "${odd}" CASCADE`);
  });

  it('keeps the capture function from running a caller-supplied operator or function', async () => {
    // A caller may put its own schema before pg_catalog; the SECURITY DEFINER function pins its
    // search_path, so the caller's text = text operator never runs with the owner's rights.
    await source.query(`CREATE SCHEMA IF NOT EXISTS trap; CREATE TABLE IF NOT EXISTS trap.hits (n int)`);
    await source.query(`CREATE FUNCTION trap.texteq(text, text) RETURNS boolean LANGUAGE sql
        AS 'INSERT INTO trap.hits VALUES (1) RETURNING true';
      CREATE OPERATOR trap.= (LEFTARG = text, RIGHTARG = text, FUNCTION = trap.texteq)`);
    const before = (await readDdlEvents(src, 'shop')).length;
    await source.query(
      `SET search_path = trap, pg_catalog; ALTER TABLE "Shop Ü".orders ADD COLUMN trapped int; RESET search_path`,
    );
    expect((await readDdlEvents(src, 'shop')).slice(before).map((e) => [e.tag, e.searchPath])).toEqual([
      ['ALTER TABLE', 'trap, pg_catalog'],
    ]);
    expect(await source.query(`SELECT * FROM trap.hits`)).toEqual([]);
    await source.query(`DROP SCHEMA trap CASCADE`);
  });

  it('adds a table created later in a schema taken whole to the publication, in the creating transaction, when it has a primary key', async () => {
    await source.query(`CREATE PUBLICATION pgferry_follow FOR TABLE "Shop Ü".orders`);
    await installDdlCapture(src, 'follow', ['Shop Ü', 'other'], {
      publication: 'pgferry_follow',
      rule: { schemas: ['Shop Ü'], excludedSchemas: [], excluded: [{ schema: 'Shop Ü', table: 'Skip Me' }] },
    });
    const role = await connectAsNewRole('follow_role');
    try {
      // Any role: the trigger's function adds the table with its owner's rights.
      await role.query(`CREATE TABLE "Shop Ü"."Neu Ü" (id int PRIMARY KEY, v text)`);
    } finally {
      await role.end();
    }
    await source.query(`BEGIN;
      CREATE TABLE "Shop Ü".loose (v int);
      CREATE TABLE "Shop Ü"."Skip Me" (id int PRIMARY KEY);
      CREATE UNLOGGED TABLE "Shop Ü".scratch (id int PRIMARY KEY);
      CREATE TABLE "Shop Ü".parted (id int PRIMARY KEY) PARTITION BY RANGE (id);
      CREATE TABLE "Shop Ü".parted_1 PARTITION OF "Shop Ü".parted FOR VALUES FROM (0) TO (100);
      CREATE TABLE other.elsewhere (id int PRIMARY KEY);
      SET search_path = "Shop Ü"; CREATE TABLE copied AS SELECT id FROM orders;
      COMMIT`);
    await source.query(`BEGIN; CREATE TABLE "Shop Ü".rolled_back (id int PRIMARY KEY); ROLLBACK`);
    const published = async () =>
      (
        await source.query(
          `SELECT n.nspname || '.' || c.relname AS t FROM pg_publication_rel pr
             JOIN pg_publication p ON p.oid = pr.prpubid JOIN pg_class c ON c.oid = pr.prrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE p.pubname = 'pgferry_follow' ORDER BY 1`,
        )
      ).map((r) => r.t);
    // A partitioned table as its root (its partitions follow); the table without a key, the
    // excluded, unlogged, unselected, CREATE TABLE AS and rolled-back ones are not added.
    expect(await published()).toEqual(['Shop Ü.Neu Ü', 'Shop Ü.orders', 'Shop Ü.parted']);
    // The source still takes updates of the table left out.
    await source.query(`INSERT INTO "Shop Ü".loose VALUES (1); UPDATE "Shop Ü".loose SET v = 2`);
    await removeDdlCapture(src, 'follow');
    await source.query(`DROP PUBLICATION pgferry_follow`);
  });

  it('with no include, captures statements in every user schema, new ones too, and streams their new tables', async () => {
    await source.query(`CREATE PUBLICATION pgferry_every`);
    await installDdlCapture(
      src,
      'every',
      { allBut: ['other'] },
      {
        publication: 'pgferry_every',
        rule: { schemas: null, excludedSchemas: ['other'], excluded: [] },
      },
    );
    await source.query(`CREATE SCHEMA "Neu S"`);
    await source.query(`CREATE TABLE "Neu S".t (id int PRIMARY KEY)`);
    await source.query(`CREATE TABLE other.excluded (id int PRIMARY KEY)`);
    await source.query(`DROP SCHEMA "Neu S" CASCADE`);
    expect((await readDdlEvents(src, 'every')).map((e) => [e.tag, e.schemas])).toEqual([
      ['CREATE SCHEMA', ['Neu S']],
      ['CREATE TABLE', ['Neu S']],
      ['DROP SCHEMA', ['Neu S']],
    ]);
    // The table was in the publication until its schema was dropped; the excluded one never.
    await source.query(`CREATE SCHEMA again; CREATE TABLE again.t (id int PRIMARY KEY)`);
    expect(
      await source.query(
        `SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'pgferry_every'`,
      ),
    ).toEqual([{ schemaname: 'again', tablename: 't' }]);
    await removeDdlCapture(src, 'every');
    await source.query(
      `DROP PUBLICATION pgferry_every; DROP SCHEMA again CASCADE; DROP TABLE other.excluded`,
    );
  });

  it('remove drops every object it created and nothing else', async () => {
    expect(await removeDdlCapture(src, 'shop')).toEqual([
      'event trigger "pgferry_shop_ddl"',
      'event trigger "pgferry_shop_drop"',
      'function "pgferry"."ddl_shop_capture"()',
      'table "pgferry"."ddl_shop"',
      'schema "pgferry"',
    ]);
    expect(await removeDdlCapture(src, 'shop')).toEqual([]);
    expect(await source.query(`SELECT evtname FROM pg_event_trigger`)).toEqual([]);
    await source.query(`ALTER TABLE "Shop Ü".orders ADD COLUMN later int`); // DDL works without the capture
  });

  const clients: Client[] = [];
  async function destinationClient(): Promise<Client> {
    const c = await destination.connect();
    clients.push(c);
    return c;
  }
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.end()));
  });
});
