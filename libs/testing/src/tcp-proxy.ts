import { createServer, connect as tcpConnect, type Server, type Socket } from 'node:net';

/** A TCP proxy in front of a server, whose connections can be made to go silent. */
export interface StallingProxy {
  readonly host: string;
  readonly port: number;
  /**
   * From now on, drops every byte both ways on the open connections whose first bytes from the
   * client (a PostgreSQL startup message names its application_name in clear) contain `marker`,
   * without closing them: a silent network drop, as a NAT or firewall that lost the flow makes.
   * Connections opened later are forwarded as before. Returns how many went silent.
   */
  stall(marker: string): number;
  /** Ends every connection and the listener. */
  close(): Promise<void>;
}

/** The bytes of a connection's start kept to match `stall`'s marker. */
const HEAD_BYTES = 4096;

/** Listens on a free port of 127.0.0.1 and forwards each connection to `target`. */
export async function startStallingProxy(target: { host: string; port: number }): Promise<StallingProxy> {
  const open = new Set<{ client: Socket; upstream: Socket; head: Buffer; silent: boolean }>();
  const server: Server = createServer((client) => {
    const upstream = tcpConnect(target.port, target.host);
    const conn = { client, upstream, head: Buffer.alloc(0), silent: false };
    open.add(conn);
    client.on('data', (d: Buffer) => {
      if (conn.head.length < HEAD_BYTES) conn.head = Buffer.concat([conn.head, d]).subarray(0, HEAD_BYTES);
      if (!conn.silent) upstream.write(d);
    });
    upstream.on('data', (d: Buffer) => {
      if (!conn.silent) client.write(d);
    });
    const end = () => {
      open.delete(conn);
      client.destroy();
      upstream.destroy();
    };
    for (const s of [client, upstream]) {
      s.on('error', end);
      s.on('close', end);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the proxy has no TCP address');
  return {
    host: '127.0.0.1',
    port: address.port,
    stall(marker) {
      let n = 0;
      for (const c of open)
        if (!c.silent && c.head.includes(marker)) {
          c.silent = true;
          n++;
        }
      return n;
    },
    async close() {
      for (const c of open) {
        c.client.destroy();
        c.upstream.destroy();
      }
      open.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
