import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files of a test certificate authority and a server certificate it signed. */
export interface TestCertificates {
  dir: string;
  /** The CA's certificate (what a client trusts). */
  caFile: string;
  ca: string;
  /** The server's certificate for `localhost` and 127.0.0.1, signed by the CA. */
  certFile: string;
  cert: string;
  keyFile: string;
  key: string;
  /** A second CA that signed nothing here: trusting it must fail. */
  otherCaFile: string;
  otherCa: string;
}

/**
 * A fresh CA and a server certificate for localhost (SAN DNS:localhost, IP:127.0.0.1), made
 * with openssl (P-256 keys, valid two days), in a new temporary directory.
 */
export function makeTestCertificates(): TestCertificates {
  const dir = mkdtempSync(join(tmpdir(), 'pgferry-tls-'));
  const f = (name: string) => join(dir, name);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  for (const name of ['ca', 'other-ca'])
    openssl([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      f(`${name}.key`),
      '-out',
      f(`${name}.pem`),
      '-days',
      '2',
      '-subj',
      `/CN=pgferry test ${name}`,
    ]);
  openssl(['req', ...ec, '-keyout', f('server.key'), '-out', f('server.csr'), '-subj', '/CN=localhost']);
  writeFileSync(f('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl([
    'x509',
    '-req',
    '-in',
    f('server.csr'),
    '-CA',
    f('ca.pem'),
    '-CAkey',
    f('ca.key'),
    '-CAcreateserial',
    '-out',
    f('server.pem'),
    '-days',
    '2',
    '-extfile',
    f('san.ext'),
  ]);
  const read = (name: string) => readFileSync(f(name), 'utf8');
  return {
    dir,
    caFile: f('ca.pem'),
    ca: read('ca.pem'),
    certFile: f('server.pem'),
    cert: read('server.pem'),
    keyFile: f('server.key'),
    key: read('server.key'),
    otherCaFile: f('other-ca.pem'),
    otherCa: read('other-ca.pem'),
  };
}
