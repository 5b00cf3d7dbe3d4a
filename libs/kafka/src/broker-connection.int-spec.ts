import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { ConnectionError, PgferryError } from '@pgferry/core';
import { BrokerConnection } from './broker-connection';
import { KafkaCluster } from './kafka-cluster';

/**
 * A TCP server that answers every request with `body` after the request's correlation id:
 * a broker whose responses do not parse.
 */
async function garbledBroker(body: Buffer): Promise<{ port: number; server: Server }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('data', (frame) => {
      // Request: int32 size, int16 api key, int16 version, int32 correlation id, ...
      const correlationId = frame.readInt32BE(8);
      const head = Buffer.alloc(8);
      head.writeInt32BE(4 + body.length, 0);
      head.writeInt32BE(correlationId, 4);
      socket.write(Buffer.concat([head, body]));
    });
  });
  server.on('close', () => sockets.forEach((s) => s.destroy()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

const options = (port: number) => ({
  host: '127.0.0.1',
  port,
  label: `test broker (127.0.0.1:${port})`,
  clientId: 'pgferry-test',
  connectTimeoutMs: 5_000,
  requestTimeoutMs: 5_000,
});

describe('BrokerConnection: a response that does not parse is a retriable ConnectionError', () => {
  let broker: { port: number; server: Server } | null = null;
  afterEach(async () => {
    await new Promise((resolve) => broker?.server.close(resolve));
    broker = null;
  });

  it('an ApiVersions array longer than the response', async () => {
    // errorCode 0, then an api_keys array of 1000 entries and nothing after it.
    broker = await garbledBroker(Buffer.from([0, 0, 0, 0, 0x03, 0xe8]));
    const err = await BrokerConnection.open(options(broker.port)).catch((e) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.retriable).toBe(true);
    expect(err.message).toBe(
      `reading the ApiVersions response of test broker (127.0.0.1:${broker.port}): the broker's response does not parse (array length 1000 exceeds the message's 0 bytes left)`,
    );
  });

  it('an ApiVersions response cut short', async () => {
    broker = await garbledBroker(Buffer.from([0, 0]));
    const err = await BrokerConnection.open(options(broker.port)).catch((e) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect(err.message).toMatch(
      /^reading the ApiVersions response of test broker \(127\.0\.0\.1:\d+\): the broker's response does not parse \(truncated: /,
    );
  });
});

describe('KafkaCluster without bootstrap servers', () => {
  it('refuses to connect with an error naming kafka.brokers', async () => {
    const cluster = new KafkaCluster({ clientId: 'pgferry-test', brokers: [] });
    const err = await cluster.connect().catch((e) => e);
    expect(err).toBeInstanceOf(PgferryError);
    expect(err.retriable).toBe(false);
    expect(err.message).toBe('no Kafka bootstrap servers given: set kafka.brokers (host:port, ...)');
    await cluster.close();
  });
});
