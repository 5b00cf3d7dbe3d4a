import { parseTaskSpec } from '@pgferry/core';
import { checkSnapshotCompression } from './check-platform';

const spec = (extra: Record<string, unknown> = {}) =>
  parseTaskSpec({
    name: 't',
    source: { url: 'postgres://u@h/s' },
    destination: { url: 'postgres://u@h/d' },
    ...extra,
  });

describe('checkSnapshotCompression', () => {
  it('passes lz4 where the native binary loads, and none anywhere', () => {
    expect(checkSnapshotCompression(spec(), true)).toMatchObject({ id: 'compression', level: 'passed' });
    expect(checkSnapshotCompression(spec({ options: { snapshotCompression: 'none' } }), false)?.level).toBe(
      'passed',
    );
  });

  it('alerts when lz4 is asked for and the binary did not load, naming the platform and the fix', () => {
    const item = checkSnapshotCompression(spec(), false, 'plan9-mips');
    expect(item?.level).toBe('alert');
    expect(item?.message).toMatch(/lz4-napi's native binary did not load on this platform \(plan9-mips\)/);
    expect(item?.message).toMatch(/set options\.snapshotCompression to none$/);
    expect(item?.fix).toBe('"options": { "snapshotCompression": "none" }');
  });

  it('has nothing to say for a task without a snapshot', () => {
    expect(
      checkSnapshotCompression(spec({ migrationTypes: { full: false, incremental: true } }), false),
    ).toBeNull();
  });
});
