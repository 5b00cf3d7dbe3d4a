// npm run bench -- broker [--records N] [--size BYTES] [--batch N] [--partitions N]
// Produce and consume throughput of 1 KiB records with kafkajs against the embedded broker,
// run as a separate process (`pgferry broker`), so its CPU can be told apart from the client's.
// Prints records/s and MB/s for both directions, and the CPU seconds spent by broker and client:
// the broker is not the bottleneck when its CPU share is well below the client's.
const { spawn } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const { join } = require('node:path');
const { Buffer } = require('node:buffer');
const { Kafka, logLevel, CompressionTypes } = require('kafkajs');

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

async function main() {
  const records = arg('records', 200000);
  const size = arg('size', 1024);
  const batch = arg('batch', 1000);
  const partitions = arg('partitions', 4);
  const dataDir = mkdtempSync(join(tmpdir(), 'pgferry-bench-broker-'));
  const main = join(__dirname, '..', 'apps', 'controller', 'dist', 'main.js');
  const child = spawn(
    process.execPath,
    [main, 'broker', '--data-dir', dataDir, '--port', '0', '--registry-port', 'none', '--flush', '1000'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /kafka 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.once('exit', (c) => reject(new Error(`broker exited ${c}`)));
  });
  try {
    const kafka = new Kafka({ brokers: [`127.0.0.1:${port}`], logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: 'bench', numPartitions: partitions }] });
    await admin.disconnect();
    const value = Buffer.alloc(size, 'x');
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    const cpu0 = { broker: cpuSeconds(child.pid), client: process.cpuUsage() };
    let t = process.hrtime.bigint();
    for (let sent = 0; sent < records; sent += batch) {
      const n = Math.min(batch, records - sent);
      await producer.send({
        topic: 'bench',
        acks: -1,
        compression: CompressionTypes.None,
        messages: Array.from({ length: n }, (_, i) => ({ key: String(sent + i), value })),
      });
    }
    const produceSecs = Number(process.hrtime.bigint() - t) / 1e9;
    const cpu1 = { broker: cpuSeconds(child.pid), client: process.cpuUsage(cpu0.client) };
    await producer.disconnect();

    const consumer = kafka.consumer({
      groupId: 'bench',
      maxBytes: 16 * 1024 * 1024,
      maxBytesPerPartition: 4 * 1024 * 1024,
      maxWaitTimeInMs: 100,
    });
    await consumer.connect();
    await consumer.subscribe({ topic: 'bench', fromBeginning: true });
    let got = 0;
    const cpu2 = { broker: cpuSeconds(child.pid), client: process.cpuUsage() };
    t = process.hrtime.bigint();
    await new Promise((resolve) => {
      consumer.run({
        eachBatch: async ({ batch: b }) => {
          got += b.messages.length;
          if (got >= records) resolve();
        },
      });
    });
    const consumeSecs = Number(process.hrtime.bigint() - t) / 1e9;
    const cpu3 = { broker: cpuSeconds(child.pid), client: process.cpuUsage(cpu2.client) };
    await consumer.disconnect();
    const mb = (records * size) / 1e6;
    const line = (what, secs, brokerCpu, clientCpu) =>
      `${what.padEnd(8)} ${Math.round(records / secs)
        .toString()
        .padStart(8)} records/s ${(mb / secs).toFixed(1).padStart(7)} MB/s` +
      `   broker CPU ${brokerCpu.toFixed(2)}s, client CPU ${clientCpu.toFixed(2)}s (broker/client ${(brokerCpu / clientCpu).toFixed(2)})`;
    console.log(
      `${records} records of ${size} bytes, ${partitions} partitions, ${batch} per send, kafkajs 2.2.4`,
    );
    console.log(
      line('produce', produceSecs, cpu1.broker - cpu0.broker, (cpu1.client.user + cpu1.client.system) / 1e6),
    );
    console.log(
      line('consume', consumeSecs, cpu3.broker - cpu2.broker, (cpu3.client.user + cpu3.client.system) / 1e6),
    );
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
