import { captureOutput } from '@pgferry/testing';
import { runDemo } from './demo';

describe('pgferry demo: a migration without downtime on two local clusters', () => {
  it('keeps writes running through the migration, streams them with the lag line, cuts over, finds every table equal and says how long writes were blocked', async () => {
    const out = captureOutput();
    const result = await runDemo({ scale: 1, writers: 2, rate: 100, streamSeconds: 3, out: out.out });
    const text = out.text();
    expect({ code: result.code, out: result.code ? text : '' }).toEqual({ code: 0, out: '' });

    // The lag line of the migrate progress, while streaming and while the cutover catches up.
    expect(text).toMatch(/ {2}stream {2}source \S+ {2}captured \S+ {2}applied \S+ {2}lag \d+\.\ds/);
    expect(text).toMatch(/incremental {2}done: caught up to source position/);
    expect(text).toMatch(/ {2}> cutover done: 0 sequences set; 6 tables equal/);

    // Writes went on through the whole migration, and many after the snapshot, through the stream.
    const written = result.written!;
    const streamed = result.writtenWhileStreaming!;
    expect(written.tpcb).toBeGreaterThan(0);
    expect(written.mixed).toBeGreaterThan(0);
    expect(streamed.tpcb).toBeGreaterThan(0);
    expect(result.historyWhileStreaming).toBeGreaterThan(0);
    expect(result.historyWhileStreaming).toBeLessThanOrEqual(streamed.tpcb);
    const total = written.tpcb + written.mixed;
    expect(text).toContain(
      `  written    ${total} transactions committed on the source during the migration by 2 writers (${written.tpcb} TPC-B-like, ${written.mixed} on mixed_rows), ${streamed.tpcb + streamed.mixed} of them while the stream was live`,
    );
    expect(text).toContain(
      `  streamed   ${result.historyWhileStreaming} pgbench_history rows on the destination were written on the source after the stream went live`,
    );
    expect(text).toMatch(/ {2}lag {8}\d+\.\ds when the writes stopped, at most \d+\.\ds while streaming/);

    // The blocked-writes time, as measured and as said.
    expect(result.blockedSeconds).toBeGreaterThan(0);
    expect(text).toContain(`  cutover    writes were blocked for ${result.blockedSeconds!.toFixed(1)} s:`);

    // Every table equal on both sides; the history holds exactly one row per TPC-B transaction.
    expect(result.tables.map((t) => [t.table, t.equal])).toEqual([
      ['public.pgbench_accounts', true],
      ['public.pgbench_branches', true],
      ['public.pgbench_tellers', true],
      ['public.pgbench_history', true],
      ['public.mixed_rows', true],
      ['types.all_types', true],
    ]);
    const history = result.tables.find((t) => t.table === 'public.pgbench_history')!;
    expect(history).toMatchObject({ sourceRows: written.tpcb, destinationRows: written.tpcb });
    const mixed = result.tables.find((t) => t.table === 'public.mixed_rows')!;
    expect(mixed.destinationRows).toBe(mixed.sourceRows);
    expect(text).toContain('  tables     all 6 equal');
    expect(text).toMatch(/clusters stopped and removed\n$/);
  }, 180_000);
});
