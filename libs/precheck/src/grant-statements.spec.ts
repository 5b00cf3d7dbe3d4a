import { SpecError } from '@pgferry/core';
import {
  alterTableReplicaIdentity,
  dropReplicationSlot,
  grantOnDatabase,
  grantOnSchema,
  grantOnSequence,
  grantOnTable,
  grantRole,
  grantSetParameter,
} from './grant-statements';

describe('fix statements', () => {
  it('quotes adversarial names the way PostgreSQL reads them back', () => {
    expect(grantOnTable(['SELECT'], 'Sales "Q"', "o'hara tbl", 'app "ro"')).toBe(
      `GRANT SELECT ON TABLE "Sales ""Q"""."o'hara tbl" TO "app ""ro""";`,
    );
    expect(grantOnSchema(['USAGE'], 'línea_表_😀', 'select')).toBe(
      'GRANT USAGE ON SCHEMA "línea_表_😀" TO "select";',
    );
    expect(grantOnDatabase(['CREATE'], 'a.b; DROP DATABASE x', ' lead')).toBe(
      'GRANT CREATE ON DATABASE "a.b; DROP DATABASE x" TO " lead";',
    );
    expect(grantOnSequence(['SELECT'], 'MixedCase', '"', 'u')).toBe(
      'GRANT SELECT ON SEQUENCE "MixedCase"."""" TO "u";',
    );
    expect(grantRole('Owner "x"', 'app')).toBe('GRANT "Owner ""x""" TO "app";');
    expect(alterTableReplicaIdentity('s', 't"', { full: true })).toBe(
      'ALTER TABLE "s"."t""" REPLICA IDENTITY FULL;',
    );
    expect(alterTableReplicaIdentity('s', 't', { default: true })).toBe(
      'ALTER TABLE "s"."t" REPLICA IDENTITY DEFAULT;',
    );
    expect(alterTableReplicaIdentity('s', 't', { index: 'uq "code"' })).toBe(
      'ALTER TABLE "s"."t" REPLICA IDENTITY USING INDEX "uq ""code""";',
    );
  });

  it('lists each privilege once, in a fixed order', () => {
    expect(grantOnTable(['TRUNCATE', 'SELECT', 'DELETE', 'SELECT', 'INSERT', 'UPDATE'], 's', 't', 'u')).toBe(
      'GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLE "s"."t" TO "u";',
    );
    expect(grantOnSchema(['CREATE', 'USAGE'], 's', 'u')).toBe('GRANT USAGE, CREATE ON SCHEMA "s" TO "u";');
    expect(grantOnDatabase(['TEMPORARY', 'CONNECT'], 'd', 'u')).toBe(
      'GRANT CONNECT, TEMPORARY ON DATABASE "d" TO "u";',
    );
  });

  it('quotes the slot name as a literal', () => {
    expect(dropReplicationSlot("pgferry_a'); DROP TABLE t; --")).toBe(
      "SELECT pg_drop_replication_slot('pgferry_a''); DROP TABLE t; --');",
    );
  });

  it('grants SET on a parameter by its plain name only', () => {
    expect(grantSetParameter('session_replication_role', 'app "rw"')).toBe(
      'GRANT SET ON PARAMETER session_replication_role TO "app ""rw""";',
    );
    expect(() => grantSetParameter('x TO public; --', 'u')).toThrow(RangeError);
  });

  it('refuses names PostgreSQL cannot hold (a spec error) and empty privilege lists (a bug)', () => {
    expect(() => grantOnTable(['SELECT'], 's', 'a\0b', 'u')).toThrow(SpecError);
    expect(() => grantOnTable(['SELECT'], 's', 'a\0b', 'u')).toThrow(
      'task spec: an identifier cannot contain a NUL character ("a\\u0000b"): correct the name in the task spec',
    );
    expect(() => grantRole('', 'u')).toThrow(SpecError);
    expect(() => grantOnTable([], 's', 't', 'u')).toThrow(RangeError);
    expect(() => grantOnTable([], 's', 't', 'u')).toThrow('a GRANT needs at least one privilege');
  });
});
