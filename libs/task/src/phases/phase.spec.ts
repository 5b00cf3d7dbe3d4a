import { ConnectionError, DataError } from '@pgferry/core';
import type { PhaseName, PhaseStatus } from '@pgferry/control';
import type { MigrationEvent } from '../migration-event';
import { runPhases, type Phase, type PhaseRecords, type PhaseSelection } from './phase';

/** pgferry.phases as a map, with every write kept in order. */
class FakeRecords implements PhaseRecords {
  readonly status = new Map<PhaseName, PhaseStatus>();
  readonly writes: Array<[PhaseName, PhaseStatus, unknown]> = [];
  async phaseStatus(phase: PhaseName): Promise<PhaseStatus> {
    return this.status.get(phase) ?? 'pending';
  }
  async setPhase(phase: PhaseName, status: PhaseStatus, detail: unknown = {}): Promise<void> {
    this.status.set(phase, status);
    this.writes.push([phase, status, detail]);
  }
}

interface Ctx {
  records: FakeRecords;
  emit: (e: MigrationEvent) => void;
  ran: PhaseName[];
  retryWindows?: { connectionMinutes: number; otherMinutes: number };
  reconnect?(): Promise<unknown>;
}

function phase(name: PhaseName, selection: PhaseSelection, run?: () => Promise<string>): Phase<Ctx> {
  return {
    name,
    selection: () => selection,
    async run(ctx) {
      ctx.ran.push(name);
      return run ? run() : `${name} detail`;
    },
  };
}

function context(): Ctx & { events: MigrationEvent[] } {
  const events: MigrationEvent[] = [];
  return { records: new FakeRecords(), emit: (e) => events.push(e), ran: [], events };
}

describe('runPhases', () => {
  it('runs selected phases in order, recording running then done with the detail', async () => {
    const ctx = context();
    await runPhases([phase('schema-pre', 'selected'), phase('full-data', 'selected')], ctx);
    expect(ctx.ran).toEqual(['schema-pre', 'full-data']);
    expect(ctx.records.writes).toEqual([
      ['schema-pre', 'running', {}],
      ['schema-pre', 'done', { detail: 'schema-pre detail' }],
      ['full-data', 'running', {}],
      ['full-data', 'done', { detail: 'full-data detail' }],
    ]);
    expect(ctx.events).toEqual([
      { kind: 'phase', phase: 'schema-pre', status: 'running' },
      { kind: 'phase', phase: 'schema-pre', status: 'done', detail: 'schema-pre detail' },
      { kind: 'phase', phase: 'full-data', status: 'running' },
      { kind: 'phase', phase: 'full-data', status: 'done', detail: 'full-data detail' },
    ]);
  });

  it('skips a phase an earlier run finished, and reports unselected ones; inapplicable ones leave no trace', async () => {
    const ctx = context();
    ctx.records.status.set('schema-pre', 'done');
    await runPhases(
      [
        phase('schema-pre', 'selected'),
        phase('full-data', 'not-selected'),
        phase('verify', 'not-applicable'),
        phase('schema-post', 'selected'),
      ],
      ctx,
    );
    expect(ctx.ran).toEqual(['schema-post']);
    expect(ctx.records.writes.map(([p, s]) => `${p} ${s}`)).toEqual([
      'schema-post running',
      'schema-post done',
    ]);
    expect(ctx.events.slice(0, 2)).toEqual([
      { kind: 'phase', phase: 'schema-pre', status: 'skipped', detail: 'done by an earlier run' },
      { kind: 'phase', phase: 'full-data', status: 'skipped', detail: 'not selected in migrationTypes' },
    ]);
    expect(ctx.events.some((e) => e.kind === 'phase' && e.phase === 'verify')).toBe(false);
  });

  it('records a failure with its message, stops there, and runs the failed phase again next time', async () => {
    const ctx = context();
    let attempts = 0;
    const phases = [
      phase('schema-pre', 'selected'),
      phase('full-data', 'selected', async () => {
        if (++attempts === 1) throw new Error('source went away');
        return 'loaded';
      }),
      phase('schema-post', 'selected'),
    ];
    await expect(runPhases(phases, ctx)).rejects.toThrow('source went away');
    expect(ctx.ran).toEqual(['schema-pre', 'full-data']);
    expect(ctx.records.status.get('full-data')).toBe('failed');
    expect(ctx.records.writes.at(-1)).toEqual(['full-data', 'failed', { error: 'source went away' }]);

    const again = { ...context(), records: ctx.records };
    await runPhases(phases, again);
    expect(again.ran).toEqual(['full-data', 'schema-post']);
    expect(ctx.records.status.get('full-data')).toBe('done');
  });

  it('throws the phase failure even when recording it fails', async () => {
    const ctx = context();
    const records = ctx.records;
    records.setPhase = async (p, status, detail) => {
      if (status === 'failed') throw new Error('destination gone too');
      return FakeRecords.prototype.setPhase.call(records, p, status, detail);
    };
    const failing = phase('full-data', 'selected', async () => {
      throw new Error('capture failed');
    });
    await expect(runPhases([failing], ctx)).rejects.toThrow('capture failed');
  });

  it('reads the records anew for each phase, so a phase that reconnects hands the next one its new store', async () => {
    const first = new FakeRecords();
    const second = new FakeRecords();
    const ctx = { ...context(), records: first };
    const reconnecting: Phase<typeof ctx> = {
      name: 'incremental',
      selection: () => 'selected',
      async run(c) {
        c.records = second;
        return 'caught up';
      },
    };
    await runPhases([reconnecting, phase('cutover', 'selected')], ctx);
    expect(first.writes.map(([p, s]) => `${p} ${s}`)).toEqual(['incremental running']);
    expect(second.writes.map(([p, s]) => `${p} ${s}`)).toEqual([
      'incremental done',
      'cutover running',
      'cutover done',
    ]);
  });

  it('runs a phase that lost a server again after reconnecting, and never one that failed otherwise', async () => {
    const ctx = context();
    let reconnects = 0;
    let runs = 0;
    const windows = { connectionMinutes: 1, otherMinutes: 1 };
    const flaky = phase('full-data', 'selected', async () => {
      if (++runs === 1) throw new ConnectionError('connecting to source: server closed the connection');
      return 'loaded';
    });
    await runPhases([flaky], { ...ctx, retryWindows: windows, reconnect: async () => void reconnects++ });
    expect([runs, reconnects]).toEqual([2, 1]);
    expect(ctx.records.status.get('full-data')).toBe('done');
    expect(ctx.events.map((e) => (e.kind === 'phase' ? (e.detail ?? '') : '')).join('\n')).toMatch(
      /lost a connection \(connecting to source: server closed the connection\); reconnecting and running the phase again/,
    );

    const other = context();
    let badRuns = 0;
    const bad = phase('full-data', 'selected', async () => {
      badRuns++;
      throw new DataError('row does not fit');
    });
    await expect(
      runPhases([bad], { ...other, retryWindows: windows, reconnect: async () => undefined }),
    ).rejects.toThrow('row does not fit');
    expect(badRuns).toBe(1);
  });
});
