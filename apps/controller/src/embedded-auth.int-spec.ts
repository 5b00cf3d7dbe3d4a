import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { startPostgres, waitFor, type PgCluster } from '@pgferry/testing';

const execFileP = promisify(execFile);
const MAIN = join(__dirname, '..', 'dist', 'main.js');

/** librdkafka properties as pgferry writes them: key=value lines, # comments. */
function properties(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const eq = line.indexOf('=');
    if (!line.startsWith('#') && eq > 0) out.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return out;
}

/** The command lines of every process but this one, read from /proc. */
function commandLines(): string[] {
  const out: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      out.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // gone
    }
  }
  return out;
}

describe('pgferry migrate on the embedded broker: a per-run secret, and a task API with a token', () => {
  let source: PgCluster;
  let destination: PgCluster;
  let migrate: ChildProcess | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-embedded-auth-'));
  beforeAll(async () => {
    if (spawnSync('kcat', ['-V']).error) throw new Error('kcat is not installed: run apt-get install kcat');
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
    await source.createDatabase('shop');
    await destination.createDatabase('shop');
    await source.query(
      'CREATE TABLE items (id int PRIMARY KEY, name text); INSERT INTO items SELECT g, $$i$$ || g FROM generate_series(1, 500) g',
      [],
      'shop',
    );
  });
  afterAll(async () => {
    if (migrate?.exitCode === null) migrate.kill('SIGKILL');
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses clients without the credentials (kafkajs, kcat, HTTP) and serves those given them; the secret is in no argv or log', async () => {
    const workDir = join(dir, 'work');
    const pw = (name: string, pg: PgCluster) => {
      const f = join(dir, `${name}.pw`);
      writeFileSync(f, pg.password, { mode: 0o600 });
      return f;
    };
    let stdout = '';
    let stderr = '';
    migrate = spawn(
      process.execPath,
      [
        MAIN,
        'migrate',
        '--source',
        `postgres://postgres@${source.host}:${source.port}/shop`,
        '--target',
        `postgres://postgres@${destination.host}:${destination.port}/shop`,
        '--source-password-file',
        pw('source', source),
        '--target-password-file',
        pw('destination', destination),
        '--incremental',
        '--name',
        'authrun',
        '--work-dir',
        workDir,
        '--api-port',
        '0',
        '--no-verify',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    migrate.stdout!.on('data', (d) => (stdout += d));
    migrate.stderr!.on('data', (d) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => migrate!.once('close', resolve));
    const argvs = new Set<string>();
    const watch = setInterval(() => commandLines().forEach((l) => argvs.add(l)), 20);

    try {
      const api = await waitFor(
        () => /^api +(http:\/\/127\.0\.0\.1:\d+)\/tasks\/authrun$/m.exec(stdout)?.[1],
        { timeout: 60_000, reason: `migrate prints its API address (stdout: ${stdout}, stderr: ${stderr})` },
      );
      const token = await waitFor(
        () => /^api token +(\S+) \(Authorization: Bearer; also in (\S+)\)$/m.exec(stdout),
        {
          timeout: 5_000,
          reason: `migrate prints the API token (stdout: ${stdout})`,
        },
      );
      expect(readFileSync(token![2], 'utf8')).toBe(`${token![1]}\n`);
      expect(statSync(token![2]).mode & 0o777).toBe(0o600);
      const bearer = { authorization: `Bearer ${token![1]}` };

      // The API: 401 without the token, 403 for a cross-origin change even with it.
      const anonymous = await fetch(`${api}/tasks/authrun`);
      expect(anonymous.status).toBe(401);
      expect(await anonymous.json()).toEqual({
        statusCode: 401,
        error: 'Unauthorized',
        message: `the task API requires the header Authorization: Bearer <token>; the token is in ${token![2]}`,
      });
      const wrong = await fetch(`${api}/tasks/authrun`, { headers: { authorization: 'Bearer guess' } });
      expect(wrong.status).toBe(401);
      await waitFor(
        async () =>
          ((await (await fetch(`${api}/tasks/authrun`, { headers: bearer })).json()) as { phase?: string })
            .phase === 'incremental',
        { timeout: 90_000, reason: 'the task reaches its incremental phase' },
      );
      const forged = await fetch(`${api}/tasks/authrun/cutover`, {
        method: 'POST',
        headers: { ...bearer, origin: 'http://evil.example' },
      });
      expect(forged.status).toBe(403);
      expect(((await forged.json()) as { message: string }).message).toBe(
        'cross-origin POST /tasks/authrun/cutover refused (Origin: http://evil.example, Sec-Fetch-Site: none): the task API takes changes only from programs (curl, pgferry) or its own origin',
      );
      expect((await fetch(`${api}/tasks/authrun/cutover`, { method: 'POST' })).status).toBe(401);

      // The Kafka credentials: where migrate said, 0600, usable by kcat as they are.
      const file = /credentials in (\S+)\)$/m.exec(stdout)?.[1];
      expect(file).toBe(join(workDir, 'kafka-client.properties'));
      expect(statSync(file!).mode & 0o777).toBe(0o600);
      const props = properties(readFileSync(file!, 'utf8'));
      const broker = props.get('bootstrap.servers')!;
      const password = props.get('sasl.password')!;
      expect(password.length).toBeGreaterThanOrEqual(40);
      const listed = await execFileP('kcat', ['-F', file!, '-L', '-m', '10'], { timeout: 30_000 });
      expect(listed.stdout).toContain('topic "pgferry.authrun.public.items"');
      const bare = await execFileP('kcat', ['-b', broker, '-L', '-m', '3'], { timeout: 30_000 }).catch(
        (e) => e,
      );
      expect(bare.code).not.toBe(0);

      const kafka = (sasl: boolean) =>
        new Kafka({
          clientId: 'auth-e2e',
          brokers: [broker],
          logLevel: logLevel.NOTHING,
          retry: { retries: 0 },
          ...(sasl
            ? { sasl: { mechanism: 'scram-sha-256', username: props.get('sasl.username')!, password } }
            : {}),
        });
      const refused = kafka(false).admin();
      await expect(refused.connect().then(() => refused.listTopics())).rejects.toThrow();
      await refused.disconnect();
      const admin = kafka(true).admin();
      await admin.connect();
      expect(await admin.listTopics()).toContain('pgferry.authrun.public.items');
      await admin.disconnect();

      // The registry: 401 without basic auth, the task's subjects with it.
      const registry = /schema registry (http:\/\/\S+) \(credentials/m.exec(stdout)![1];
      expect((await fetch(`${registry}/subjects`)).status).toBe(401);
      const basic = `Basic ${Buffer.from(`${props.get('sasl.username')}:${password}`).toString('base64')}`;
      const subjects = await fetch(`${registry}/subjects`, { headers: { authorization: basic } });
      expect(subjects.status).toBe(200);
      expect(await subjects.json()).toContain('pgferry.authrun.public.items-value');

      // A change still streams through the authenticated broker; then the cutover, by the API.
      await source.query(`INSERT INTO items VALUES (501, 'late')`, [], 'shop');
      await waitFor(
        async () => (await destination.query(`SELECT 1 FROM items WHERE id = 501`, [], 'shop')).length === 1,
        { timeout: 60_000, reason: 'the change reaches the destination' },
      );
      const cutover = await fetch(`${api}/tasks/authrun/cutover`, { method: 'POST', headers: bearer });
      expect(cutover.status).toBe(201);
      expect(await exited).toBe(0);

      // The secret was in no process's argv, in no output and in no log; its file is gone.
      clearInterval(watch);
      expect([...argvs].some((l) => /capture-app|applier-app|apps\/(capture|applier)/.test(l))).toBe(true);
      expect([...argvs].filter((l) => l.includes(password))).toEqual([]);
      expect(stdout + stderr).not.toContain(password);
      const logs = ['capture.log', 'applier.log'].map((f) => join(workDir, f)).filter((f) => existsSync(f));
      expect(logs.length).toBeGreaterThan(0);
      for (const log of logs) expect(readFileSync(log, 'utf8')).not.toContain(password);
      expect(existsSync(file!)).toBe(false);
      const [{ n }] = await destination.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM items',
        [],
        'shop',
      );
      expect(n).toBe(501);
    } finally {
      clearInterval(watch);
    }
  });

  it('pgferry broker --credentials-file requires the secret it writes there, and removes the file when it stops', async () => {
    const file = join(dir, 'broker.properties');
    const broker = spawn(
      process.execPath,
      [
        MAIN,
        'broker',
        '--data-dir',
        join(dir, 'standalone'),
        '--port',
        '0',
        '--registry-port',
        '0',
        '--credentials-file',
        file,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    broker.stdout!.on('data', (d) => (out += d));
    const exited = new Promise((resolve) => broker.once('close', resolve));
    try {
      const m = (await waitFor(
        () => /kafka (127\.0\.0\.1:\d+), schema registry (\S+), data .*, credentials in (\S+)$/m.exec(out),
        { timeout: 20_000, reason: `pgferry broker starts (${out})` },
      ))!;
      expect(m[3]).toBe(file);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const password = properties(readFileSync(file, 'utf8')).get('sasl.password')!;
      const listed = await execFileP('kcat', ['-F', file, '-L', '-m', '10'], { timeout: 30_000 });
      expect(listed.stdout).toContain(`broker 0 at ${m[1]}`);
      const bare = await execFileP('kcat', ['-b', m[1], '-L', '-m', '3'], { timeout: 30_000 }).catch(
        (e) => e,
      );
      expect(bare.code).not.toBe(0);
      expect((await fetch(`${m[2]}/subjects`)).status).toBe(401);
      const basic = `Basic ${Buffer.from(`pgferry:${password}`).toString('base64')}`;
      expect((await fetch(`${m[2]}/subjects`, { headers: { authorization: basic } })).status).toBe(200);
      expect(out).not.toContain(password);
    } finally {
      broker.kill('SIGTERM');
      await exited;
    }
    expect(existsSync(file)).toBe(false);
  });
});
