// npm run bench -- kafka-startup [--rounds N] [--idle-s S] [--records N]
// Cost of the real-Kafka test fixture (startKafka from @pgferry/testing) under three JVM setups,
// alternated round by round so the machine's load hits them alike:
//   chosen:  the fixture's defaults (Kafka's G1 flags, C1 only, a class-data-sharing archive)
//   cds-c2:  the same with tiered compilation (C1 then C2)
//   kafka:   Kafka's own flags (tiered, no archive), the baseline
// Per setup: seconds from startKafka() to ready (format included), CPU seconds of the format and
// broker JVMs until ready, RSS when ready, the broker's CPU seconds while idle, and its CPU seconds
// to take --records 1 KiB records from kafkajs and to serve them to kcat (steady state). Figures
// are medians; ratios are against the baseline from the same run.
const { Buffer } = require('node:buffer');
const { execFileSync } = require('node:child_process');
const { readFileSync } = require('node:fs');
const { join } = require('node:path');
const { Kafka, logLevel } = require('kafkajs');
const { setTimeout: sleep } = require('node:timers/promises');

const testing = require(join(__dirname, '..', 'libs', 'testing', 'dist'));

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

function procCpu(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

/** CPU seconds of this process's reaped children (the format JVM once it has exited). */
function childrenCpu() {
  const f = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (Number(f[13]) + Number(f[14])) / 100;
}

function rssMb(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
}

const SETUPS = {
  chosen: {},
  'cds-c2': { jvmFlags: ['-XX:TieredStopAtLevel=4'] },
  kafka: { classDataSharing: false, jvmFlags: ['-XX:TieredStopAtLevel=4'] },
};

async function produce(kafka, records) {
  const client = new Kafka({ brokers: kafka.brokers, logLevel: logLevel.NOTHING });
  const admin = client.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: 'bench', numPartitions: 2 }], waitForLeaders: true });
  await admin.disconnect();
  const producer = client.producer();
  await producer.connect();
  const value = Buffer.alloc(1024, 'x');
  const batch = 1000;
  for (let i = 0; i < records; i += batch) {
    const messages = Array.from({ length: Math.min(batch, records - i) }, (_, j) => ({
      key: String(i + j),
      value,
    }));
    await producer.send({ topic: 'bench', acks: 1, messages });
  }
  await producer.disconnect();
}

/** Reads every record back with kcat (librdkafka, much faster than a kafkajs consumer). */
function consume(kafka, records) {
  const out = execFileSync(
    'kcat',
    ['-C', '-b', kafka.bootstrap, '-t', 'bench', '-o', 'beginning', '-e', '-q', '-f', '%o\n'],
    {
      maxBuffer: 256 * 1024 * 1024,
    },
  );
  const n = out.toString().split('\n').filter(Boolean).length;
  if (n !== records) throw new Error(`kcat read ${n} records, expected ${records}`);
}

async function round(name, idleS, records) {
  const cpu0 = childrenCpu();
  const kafka = await testing.startKafka(SETUPS[name]);
  try {
    const formatCpu = childrenCpu() - cpu0;
    const readyCpu = procCpu(kafka.pid);
    const rss = rssMb(kafka.pid);
    await sleep(idleS * 1000);
    const idleCpu = procCpu(kafka.pid) - readyCpu;
    const before = procCpu(kafka.pid);
    const t = Date.now();
    await produce(kafka, records);
    const produceS = (Date.now() - t) / 1000;
    const produceCpu = procCpu(kafka.pid) - before;
    const beforeFetch = procCpu(kafka.pid);
    consume(kafka, records);
    const fetchCpu = procCpu(kafka.pid) - beforeFetch;
    return {
      startS: kafka.startupMs / 1000,
      cpuS: formatCpu + readyCpu,
      rss,
      idleCpu,
      produceCpu,
      produceS,
      fetchCpu,
    };
  } finally {
    await kafka.remove();
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const rounds = arg('rounds', 3);
  const idleS = arg('idle-s', 10);
  const records = arg('records', 50000);
  // The chosen setup needs its archive: one clean start and stop makes it.
  const warm = await testing.startKafka();
  await warm.remove();
  const results = Object.fromEntries(Object.keys(SETUPS).map((n) => [n, []]));
  for (let r = 0; r < rounds; r++) {
    for (const name of Object.keys(SETUPS)) {
      const res = await round(name, idleS, records);
      results[name].push(res);
      console.log(
        `round ${r + 1} ${name}: ready ${res.startS.toFixed(2)} s, ${res.cpuS.toFixed(2)} cpu-s, ` +
          `rss ${res.rss.toFixed(0)} MB, idle ${res.idleCpu.toFixed(2)} cpu-s/${idleS} s, ` +
          `${records} records in ${res.produceCpu.toFixed(2)} broker cpu-s (${res.produceS.toFixed(1)} s), ` +
          `out ${res.fetchCpu.toFixed(2)} cpu-s`,
      );
    }
  }
  const base = results.kafka;
  const m = (list, key) => median(list.map((x) => x[key]));
  console.log(`\nmedians of ${rounds} rounds (ratio to kafka):`);
  for (const [name, list] of Object.entries(results)) {
    const cells = ['startS', 'cpuS', 'rss', 'idleCpu', 'produceCpu', 'fetchCpu'].map(
      (k) => `${k} ${m(list, k).toFixed(2)} (${(m(list, k) / m(base, k)).toFixed(2)})`,
    );
    console.log(`${name.padEnd(8)} ${cells.join(', ')}`);
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
