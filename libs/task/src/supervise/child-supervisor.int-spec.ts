import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive, waitFor } from '@pgferry/testing';
import {
  ChildProcessError,
  ChildSupervisor,
  PrestartedChildren,
  type ChildLifecycleEvent,
} from './child-supervisor';

const DIST = join(__dirname, '..', '..', 'dist', 'supervise', 'child-supervisor.js');
const PROTOCOL = join(__dirname, '..', '..', 'dist', 'supervise', 'child-protocol.js');

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

  describe('children forked ahead', () => {
    // A child as the capture is one: its entry loads, then runChildProcess runs its work (here:
    // it leaves <name>.ran first), which reads the configuration file named in its environment.
    // <name>.loaded, with its pid, is written on the next timer turn: after a work that started
    // at once (a microtask) has left <name>.ran.
    const job = script(
      'job',
      `const { writeFileSync, readFileSync } = require('node:fs');
       require(${JSON.stringify(PROTOCOL)}).runChildProcess('job', async (ctx) => {
         writeFileSync(process.env.RAN, 'ran');
         ctx.emit({ pid: process.pid, config: readFileSync(process.env.CONFIG, 'utf8') });
       });
       setTimeout(() => writeFileSync(process.env.LOADED, String(process.pid)), 0);`,
    );
    const envOf = (name: string) => ({
      LOADED: join(dir, `${name}.loaded`),
      RAN: join(dir, `${name}.ran`),
      CONFIG: join(dir, `${name}.json`),
    });
    const supervise = (name: string, seen: unknown[], prestarted: PrestartedChildren) =>
      new ChildSupervisor<{ pid: number; config: string }>({
        name,
        entry: job,
        dir,
        env: envOf(name),
        kind: 'job',
        restart: { windowMs: 60_000 },
        onEvent: (e) => seen.push(e),
        prestarted,
      });

    it('a child forked ahead waits for its start, then the supervisor takes it over', async () => {
      const ahead = new PrestartedChildren(dir).fork('early', job, envOf('early'));
      const pid = await waitFor(
        () => existsSync(envOf('early').LOADED) && readFileSync(envOf('early').LOADED, 'utf8'),
        {
          reason: 'the child forked ahead to load',
        },
      );
      // Loaded and waiting: its work has not begun (its configuration does not exist yet).
      expect(existsSync(envOf('early').RAN)).toBe(false);
      expect(processAlive(Number(pid))).toBe(true);
      writeFileSync(envOf('early').CONFIG, '{"task":"early"}');
      const seen: unknown[] = [];
      const sup = supervise('early', seen, ahead).start();
      await expect(sup.finished).resolves.toBeUndefined();
      expect(seen).toEqual([{ pid: Number(pid), config: '{"task":"early"}' }]);
      expect(readFileSync(join(dir, 'early.log'), 'utf8')).toMatch(/--- pgferry early pid \d+ started ahead/);
      ahead.dispose();
    });

    it('is not taken with another environment, and dispose ends a child never taken', async () => {
      const ahead = new PrestartedChildren(dir)
        .fork('other', job, { ...envOf('other'), EXTRA: '1' })
        .fork('unused', job, envOf('unused'));
      const [other, unused] = await Promise.all(
        ['other', 'unused'].map((n) =>
          waitFor(() => existsSync(envOf(n).LOADED) && Number(readFileSync(envOf(n).LOADED, 'utf8')), {
            reason: `${n} to load`,
          }),
        ),
      );
      writeFileSync(envOf('other').CONFIG, '{"task":"other"}');
      const seen: Array<{ pid: number }> = [];
      const sup = supervise('other', seen, ahead).start();
      await expect(sup.finished).resolves.toBeUndefined();
      expect(seen).toHaveLength(1);
      expect(seen[0].pid).not.toBe(other);
      await waitFor(() => !processAlive(other as number), { reason: 'the mismatched child to be killed' });
      expect(processAlive(unused as number)).toBe(true);
      ahead.dispose();
      await waitFor(() => !processAlive(unused as number), {
        reason: 'dispose to end the child never taken',
      });
    });
  });
});
