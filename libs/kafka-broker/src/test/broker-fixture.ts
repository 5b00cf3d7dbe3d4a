import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KafkaServer, type BrokerLogger } from '../server/kafka-server';
import type { BrokerOptions } from '../server/broker-state';

/** A broker on a free port with its own data directory; `restart()` reopens the same directory. */
export async function startTestBroker(options: Partial<BrokerOptions> = {}, log?: BrokerLogger) {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'pgferry-broker-'));
  let server = await KafkaServer.start({ port: 0, ...options, dataDir }, log);
  const fixture = {
    dataDir,
    get server() {
      return server;
    },
    get port() {
      return server.port;
    },
    get brokers() {
      return [`127.0.0.1:${server.port}`];
    },
    async restart(port = server.port) {
      await server.close();
      server = await KafkaServer.start({ ...options, dataDir, port }, log);
    },
    async stop() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
  return fixture;
}
