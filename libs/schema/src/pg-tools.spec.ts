import { candidateBinDirs, parsePgToolVersion, pgMajor, pgToolSearchFromEnv } from './pg-tools';

describe('parsePgToolVersion', () => {
  it.each([
    ['pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)', 150018, '15.18'],
    ['pg_restore (PostgreSQL) 17.2', 170002, '17.2'],
    ['pg_dump (PostgreSQL) 18devel', 180000, '18devel'],
    ['pg_dump (PostgreSQL) 16beta2', 160000, '16beta2'],
    ['pg_dump (PostgreSQL) 9.6.24', 90624, '9.6.24'],
  ])('%s', (output, versionNum, version) => {
    expect(parsePgToolVersion(output)).toEqual({ versionNum, version });
  });

  it('returns null for anything else', () => {
    expect(parsePgToolVersion('pg_dump: command not found')).toBeNull();
  });
});

describe('pgMajor', () => {
  it.each([
    [150018, 15],
    [170000, 17],
    [100023, 10],
    [90624, 9.6],
  ])('%i -> %d', (num, major) => {
    expect(pgMajor(num)).toBe(major);
  });
});

describe('tool search', () => {
  it('an explicit bin directory is the only candidate', () => {
    expect(candidateBinDirs({ binDir: '/opt/pg/bin', path: '/usr/bin' })).toEqual(['/opt/pg/bin']);
  });

  it('then PATH, in order, without duplicates', () => {
    expect(candidateBinDirs({ path: '/a:/b::/a' })).toEqual(['/a', '/b']);
  });

  it('reads PGFERRY_PG_BIN and PATH from the environment it is given', () => {
    expect(pgToolSearchFromEnv({ PGFERRY_PG_BIN: '/x/bin', PATH: '/usr/bin' })).toEqual({
      binDir: '/x/bin',
      versionedRoots: ['/usr/lib/postgresql'],
      path: '/usr/bin',
    });
    expect(pgToolSearchFromEnv({ PGFERRY_PG_BIN: '' }).binDir).toBeUndefined();
  });
});
