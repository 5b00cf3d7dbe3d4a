import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redactString } from '@pgferry/core';
import { resolveEndpointPassword } from './endpoint-password';

describe('resolveEndpointPassword', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-passwords-'));
  const file = (name: string, text: string, mode = 0o600) => {
    const f = join(dir, name);
    writeFileSync(f, text);
    chmodSync(f, mode);
    return f;
  };
  const url = 'postgres://app@db.example:6543/shop';

  it('takes the password the spec gives, in the url or a field', async () => {
    const r = await resolveEndpointPassword({ url: 'postgres://app:in-url@h/d' }, 'source', {
      PGPASSWORD: 'env',
    });
    expect(r).toEqual({ endpoint: { url: 'postgres://app:in-url@h/d' }, from: 'spec' });
    expect((await resolveEndpointPassword({ url, password: 'field' }, 'source', {})).endpoint.password).toBe(
      'field',
    );
  });

  it("reads passwordFile's first line, and the result reads no file again", async () => {
    const passwordFile = file('pw', 'from-file:secret\nignored\n');
    const r = await resolveEndpointPassword({ url, passwordFile }, 'source', { PGPASSWORD: 'env' });
    expect(r).toEqual({ endpoint: { url, password: 'from-file:secret' }, from: 'passwordFile' });
    expect(redactString('auth with from-file:secret')).not.toContain('from-file:secret');
  });

  it('then PGPASSWORD, then the matching line of PGPASSFILE', async () => {
    expect(await resolveEndpointPassword({ url }, 'destination', { PGPASSWORD: 'env-pw' })).toEqual({
      endpoint: { url, password: 'env-pw' },
      from: 'PGPASSWORD',
    });
    const PGPASSFILE = file(
      'pgpass',
      [
        '#db.example:6543:shop:app:commented-out',
        'db.example:5432:shop:app:wrong-port',
        'db.example:6543:other:app:wrong-db',
        'db.example:6543:*:app:pass\\:with-colon',
        '*:*:*:*:fallback',
      ].join('\n'),
    );
    expect(await resolveEndpointPassword({ url }, 'destination', { PGPASSFILE })).toEqual({
      endpoint: { url, password: 'pass:with-colon' },
      from: 'pgpass',
    });
    expect(
      (await resolveEndpointPassword({ url: 'postgres://x@elsewhere/d' }, 'destination', { PGPASSFILE }))
        .endpoint.password,
    ).toBe('fallback');
    // ~/.pgpass without PGPASSFILE; none at all without HOME either.
    file('.pgpass', 'db.example:6543:shop:app:from-home\n');
    expect((await resolveEndpointPassword({ url }, 'source', { HOME: dir })).endpoint.password).toBe(
      'from-home',
    );
    expect(await resolveEndpointPassword({ url }, 'source', {})).toEqual({ endpoint: { url }, from: 'none' });
  });

  it('ignores a PGPASSFILE others can read (as libpq does), leaving no password', async () => {
    const PGPASSFILE = file('loose', '*:*:*:*:loose-secret\n', 0o644);
    const warnings: string[] = [];
    expect(await resolveEndpointPassword({ url }, 'source', { PGPASSFILE }, (w) => warnings.push(w))).toEqual(
      {
        endpoint: { url },
        from: 'none',
      },
    );
    expect(warnings).toEqual([
      `password file "${PGPASSFILE}" has group or world access: not used; permissions should be u=rw (0600) or less (chmod 600 ${PGPASSFILE})`,
    ]);
  });

  it('names the endpoint and the file it cannot read, and refuses two passwords', async () => {
    await expect(
      resolveEndpointPassword({ url, passwordFile: join(dir, 'missing') }, 'source', {}),
    ).rejects.toThrow(
      `task spec: source.passwordFile: cannot read ${join(dir, 'missing')} (ENOENT); give a file whose first line is the password`,
    );
    await expect(
      resolveEndpointPassword({ url, passwordFile: file('empty', '\n') }, 'source', {}),
    ).rejects.toThrow('is empty; its first line must be the password');
    await expect(
      resolveEndpointPassword(
        { url: 'postgres://a:b@h/d', passwordFile: file('pw2', 'x') },
        'destination',
        {},
      ),
    ).rejects.toThrow(
      'destination: the url holds a password and passwordFile is set too: remove one of them',
    );
  });
});
