import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadPgbenchLike, startPostgres, type PgCluster } from '@pgferry/testing';

const MAIN = join(__dirname, '..', 'dist', 'main.js');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Every other process whose command line was read while the CLI ran, with the line. */
  seen: Map<number, string>;
  /** The CLI's own command line as read once it had printed something. */
  ownCommandLine: string | null;
}

/** The command lines of this user's processes now (a process that ends meanwhile is skipped). */
function commandLines(): Map<number, string> {
  const out = new Map<number, string>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      out.set(Number(entry), readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // gone, or not ours
    }
  }
  return out;
}

/**
 * Runs the built CLI, reading every process's /proc/<pid>/cmdline every few milliseconds while
 * it runs (its children, pg_dump and pg_restore among them).
 */
function pgferry(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [MAIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    const run: Run = { code: null, stdout: '', stderr: '', seen: new Map(), ownCommandLine: null };
    const look = () => {
      for (const [pid, line] of commandLines()) {
        if (pid === child.pid) {
          if (run.stdout && run.ownCommandLine === null) run.ownCommandLine = line;
        } else if (pid !== process.pid) run.seen.set(pid, `${run.seen.get(pid) ?? ''}\n${line}`);
      }
    };
    const timer = setInterval(look, 15);
    child.stdout!.on('data', (d) => (run.stdout += d));
    child.stderr!.on('data', (d) => (run.stderr += d));
    child.once('close', (code) => {
      clearInterval(timer);
      run.code = code;
      resolve(run);
    });
  });
}

/** Every directory and file under `dir` with its permission bits, `dir` first. */
function modes(dir: string): Array<{ path: string; dir: boolean; mode: number }> {
  const out = [{ path: dir, dir: true, mode: statSync(dir).mode & 0o777 }];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory()) out.push(...modes(path));
    else out.push({ path, dir: false, mode: statSync(path).mode & 0o777 });
  }
  return out;
}

/** The text of every file under `dir`. */
function allText(dir: string): string {
  return modes(dir)
    .filter((m) => !m.dir)
    .map((m) => readFileSync(m.path, 'latin1'))
    .join('\n');
}

describe('passwords and the files of pgferry migrate', () => {
  let source: PgCluster;
  let destination: PgCluster;
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-secrets-'));
  const bare = (pg: PgCluster, db: string) => `postgres://postgres@${pg.host}:${pg.port}/${db}`;
  beforeAll(async () => {
    [source, destination] = await Promise.all([startPostgres({ logical: true }), startPostgres()]);
    await source.createDatabase('shop');
    await destination.createDatabase('shop');
    const s = await source.connect('shop');
    await loadPgbenchLike(s, { scale: 1, schema: 'public', mixedRows: 5_000 });
    await s.end();
  });
  afterAll(async () => {
    await Promise.all([source?.stop(), destination?.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the passwords out of pgferry.tasks, the output, the logs, the argv of every child and the files, which only its user can read; a resume needs only the user input', async () => {
    const workDir = join(dir, 'work');
    const targetPasswordFile = join(dir, 'destination.pw');
    writeFileSync(targetPasswordFile, `${destination.password}\n`, { mode: 0o600 });
    const passwords = [source.password, destination.password];
    const leaks = (text: string) => passwords.filter((p) => text.includes(p));

    // 1. The source's password on the command line (warned about), the destination's in a file.
    const first = await pgferry([
      'migrate',
      '--source',
      source.url('shop'),
      '--target',
      bare(destination, 'shop'),
      '--target-password-file',
      targetPasswordFile,
      '--name',
      'secrets',
      '--work-dir',
      workDir,
      '--no-verify',
    ]);
    expect({ code: first.code, stderr: first.stderr }).toEqual({
      code: 0,
      stderr: expect.stringMatching(/^pgferry: warning: the password in --source is visible to other users/),
    });
    expect(first.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(first.stdout).toContain('done');
    expect(leaks(first.stdout + first.stderr)).toEqual([]);
    // Its own command line is rewritten as soon as it starts (the warning covers the instant before).
    expect(first.ownCommandLine).toContain('--source postgres://postgres:[redacted]@');
    expect(leaks(first.ownCommandLine ?? '')).toEqual([]);

    // The capture and applier ran, and no process but the CLI ever had a password in its argv.
    const children = [...first.seen.values()].filter((l) =>
      /capture-app|applier-app|apps\/(capture|applier)/.test(l),
    );
    expect(children.length).toBeGreaterThanOrEqual(2);
    expect([...first.seen.values()].filter((l) => leaks(l).length)).toEqual([]);

    const stored = await destination.query<{ spec: string }>(
      `SELECT spec::text AS spec FROM pgferry.tasks WHERE task = 'secrets'`,
      [],
      'shop',
    );
    expect(stored).toHaveLength(1);
    expect(leaks(stored[0].spec)).toEqual([]);
    expect(JSON.parse(stored[0].spec).source.url).toBe(bare(source, 'shop'));

    // The work dir and all in it (child configurations, logs, pid files, schema dumps, the
    // embedded broker's segments, indexes and metadata) are private to this user.
    const files = modes(workDir);
    expect(files.some((f) => /\/kafka\/run-[^/]+\/logs\//.test(f.path) && f.path.endsWith('.log'))).toBe(
      true,
    );
    expect(files.filter((f) => f.mode !== (f.dir ? 0o700 : 0o600))).toEqual([]);
    // The logs hold no password; the child configurations that do are removed once a child stops.
    const logs = files.filter((f) => f.path.endsWith('capture.log') || f.path.endsWith('applier.log'));
    expect(logs.length).toBe(2);
    expect(leaks(logs.map((f) => readFileSync(f.path, 'utf8')).join('\n'))).toEqual([]);
    expect(leaks(allText(join(workDir, 'kafka')))).toEqual([]);

    // 2. The same task again, from a spec with neither password: the source's from an
    // environment variable, the destination's from PGPASSFILE. It resumes from what the
    // destination recorded, which holds no password, so it needed none from there.
    chmodSync(workDir, 0o755);
    const pgpass = join(dir, 'pgpass');
    writeFileSync(pgpass, `${destination.host}:${destination.port}:shop:postgres:${destination.password}\n`, {
      mode: 0o600,
    });
    const specFile = join(dir, 'task.yaml');
    writeFileSync(
      specFile,
      `name: secrets\nsource:\n  url: ${bare(source, 'shop')}\n  password: \${SECRETS_SOURCE_PW}\ndestination:\n  url: ${bare(destination, 'shop')}\n`,
    );
    const second = await pgferry(['migrate', '--spec', specFile, '--work-dir', workDir, '--no-verify'], {
      SECRETS_SOURCE_PW: source.password,
      PGPASSFILE: pgpass,
      PGPASSWORD: '',
    });
    expect({ code: second.code, stderr: second.stderr }).toEqual({ code: 0, stderr: '' });
    expect(leaks(second.stdout)).toEqual([]);
    // A work dir an older pgferry left open is made private again.
    expect(statSync(workDir).mode & 0o777).toBe(0o700);
    const again = await destination.query<{ spec: string }>(
      `SELECT spec::text AS spec FROM pgferry.tasks WHERE task = 'secrets'`,
      [],
      'shop',
    );
    expect(leaks(again[0].spec)).toEqual([]);

    // 3. Release from the source's side, its password only in a file.
    const sourcePasswordFile = join(dir, 'source.pw');
    writeFileSync(sourcePasswordFile, source.password, { mode: 0o600 });
    const release = await pgferry([
      'release',
      '--source',
      bare(source, 'shop'),
      '--source-password-file',
      sourcePasswordFile,
      '--name',
      'secrets',
    ]);
    expect({ code: release.code, stderr: release.stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('never prints a password in an error: a spec with a syntax error on the password line, an unset variable, a wrong password', async () => {
    const secret = 'Spec-Line-Secret-42';
    const broken = join(dir, 'broken.yaml');
    writeFileSync(
      broken,
      `name: broken\nsource:\n  url: ${bare(source, 'shop')}\n  password: "${secret}\ndestination:\n  url: ${bare(destination, 'shop')}\n`,
    );
    const syntax = await pgferry(['check', '--spec', broken]);
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(
      /^pgferry: task spec: .*broken\.yaml is not valid YAML or JSON: .* at line \d+, column \d+\n$/,
    );
    expect(syntax.stderr + syntax.stdout).not.toContain(secret);

    const json = join(dir, 'broken.json');
    writeFileSync(
      json,
      `{"name": "broken", "source": {"url": "${bare(source, 'shop')}", "password": "${secret}" "x": 1}}`,
    );
    const jsonRun = await pgferry(['check', '--spec', json]);
    expect(jsonRun.code).toBe(2);
    expect(jsonRun.stderr + jsonRun.stdout).not.toContain(secret);

    const unset = join(dir, 'unset.yaml');
    writeFileSync(
      unset,
      `name: unset\nsource:\n  url: ${bare(source, 'shop')}\n  password: \${SECRETS_NOT_SET}\ndestination:\n  url: ${bare(destination, 'shop')}\n`,
    );
    const unsetRun = await pgferry(['check', '--spec', unset], { SECRETS_NOT_SET: undefined });
    expect(unsetRun.code).toBe(2);
    expect(unsetRun.stderr).toContain(
      'source.password: environment variable SECRETS_NOT_SET is not set (referenced as ${SECRETS_NOT_SET})',
    );

    // A wrong password from a file: refused by the server, and not printed back.
    const wrongFile = join(dir, 'wrong.pw');
    writeFileSync(wrongFile, secret, { mode: 0o600 });
    const wrong = await pgferry([
      'check',
      '--source',
      bare(source, 'shop'),
      '--source-password-file',
      wrongFile,
      '--target',
      bare(destination, 'shop'),
      '--target-password-file',
      wrongFile,
    ]);
    expect(wrong.code).not.toBe(0);
    expect(wrong.stdout + wrong.stderr).toMatch(/password authentication failed/);
    expect(wrong.stdout + wrong.stderr).not.toContain(secret);
  });
});
