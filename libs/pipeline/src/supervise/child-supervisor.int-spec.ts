import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive, waitFor } from '@pgferry/testing';
import { ChildProcessError, ChildSupervisor, type ChildLifecycleEvent } from './child-supervisor';

const DIST = join(__dirname, '..', '..', 'dist', 'supervise', 'child-supervisor.js');

describe('ChildSupervisor', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-supervise-'));
  const script = (name: string, body: string) => {
    const file = join(dir, `${name}.js`);
    writeFileSync(file, body);
    return file;
  };
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('restarts a crashing child with backoff, then gives up naming the process, its exit and its last output without secrets', async () => {
    const entry = script(
      'crash',
      `process.stderr.write('connecting to postgres://app:hunter2@db:5432/x\\n'); process.exit(3);`,
    );
    const events: ChildLifecycleEvent[] = [];
    const sup = new ChildSupervisor({
      name: 'capture',
      entry,
      dir,
      kind: 'job',
      restart: { windowMs: 1500, initialDelayMs: 100 },
      onLifecycle: (e) => events.push(e),
    }).start();
    const err = await sup.finished.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ChildProcessError);
    const message = (err as Error).message;
    expect(message).toMatch(
      /^capture process \(pid \d+\) exited with code 3: \d+ unexpected exits within its retry window/,
    );
    expect(message).toContain('postgres://app:[redacted]@db:5432/x');
    expect(message).not.toContain('hunter2');
    expect(events.filter((e) => e.status === 'restarting').length).toBeGreaterThanOrEqual(2);
    expect(readFileSync(join(dir, 'capture.log'), 'utf8')).toContain('--- pgferry capture pid');
  });

  it('does not restart a child that reports a fatal error', async () => {
    const entry = script(
      'fatal',
      `process.send({ type: 'failed', message: 'table "t" is gone', retriable: false }, () => process.exit(2));`,
    );
    const events: ChildLifecycleEvent[] = [];
    const sup = new ChildSupervisor({
      name: 'applier',
      entry,
      dir,
      kind: 'service',
      restart: { windowMs: 60_000, initialDelayMs: 100 },
      onLifecycle: (e) => events.push(e),
    }).start();
    await expect(sup.finished).rejects.toThrow(/^applier process \(pid \d+\) failed: table "t" is gone/);
    expect(events.map((e) => e.status)).toEqual(['started']);
  });

  it('stops a service on request, and a child dies with a controller killed by SIGKILL', async () => {
    const service = script(
      'service',
      `process.on('disconnect', () => process.exit(1));
       process.on('message', (m) => m.type === 'stop' && process.exit(0));
       process.send({ type: 'event', event: { n: 1 } });
       setInterval(() => undefined, 1000);`,
    );
    const seen: unknown[] = [];
    const sup = new ChildSupervisor<{ n: number }>({
      name: 'applier',
      entry: service,
      dir,
      kind: 'service',
      restart: { windowMs: 60_000 },
      onEvent: (e) => seen.push(e),
    }).start();
    await waitFor(() => seen.length, { reason: 'the child to report an event', timeout: 10_000 });
    expect(readFileSync(sup.pidFile, 'utf8').trim()).toBe(String(sup.pid));
    await sup.stop();
    await expect(sup.finished).resolves.toBeUndefined();
    expect(seen).toEqual([{ n: 1 }]);

    // A controller that supervises the same service, killed without a chance to clean up.
    const controller = script(
      'controller',
      `const { ChildSupervisor } = require(${JSON.stringify(DIST)});
       new ChildSupervisor({ name: 'orphan', entry: ${JSON.stringify(service)}, dir: ${JSON.stringify(dir)},
         kind: 'service', restart: { windowMs: 60000 } }).start();
       setInterval(() => undefined, 1000);`,
    );
    const parent = spawn(process.execPath, [controller], { stdio: 'ignore' });
    const childPid = await waitFor(
      () => Number(readFileSync(join(dir, 'orphan.pid'), 'utf8').trim()) || null,
      { reason: 'the controller to start its child', timeout: 10_000 },
    );
    parent.kill('SIGKILL');
    await waitFor(() => !processAlive(childPid!), {
      reason: `child ${childPid} to exit after its controller was killed`,
      timeout: 10_000,
    });
  });
});
