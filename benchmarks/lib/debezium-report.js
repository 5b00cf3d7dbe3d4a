// The debezium benchmark's table: one column per run, then the ratios pgferry / Debezium from
// the same invocation.

const ROWS = [
  ['snapshot rows', (r) => r.snapshotRows, 0],
  ['first record in Kafka, s from start', (r) => r.firstRecordInKafkaS, 1],
  ['snapshot into Kafka, s from start', (r) => r.snapshotToKafkaS, 1],
  ['snapshot into Kafka, s from first record', (r) => r.snapshotToKafkaS - r.firstRecordInKafkaS, 1],
  ['snapshot onto destination, s from start', (r) => r.snapshotToDestinationS, 1],
  ['source TPS (pgbench)', (r) => r.tps, 0],
  ['source changes/s', (r) => r.sourceChangesPerS, 0],
  ['changes/s into Kafka (load start to last in Kafka)', (r) => r.kafkaChangesPerS, 0],
  ['changes/s into Kafka during the load', (r) => r.kafkaChangesPerSDuringLoad, 0],
  ['changes of the load (4 per TPC-B transaction)', (r) => r.changes, 0],
  ['  records in Kafka for them', (r) => r.kafkaRecordsForChanges, 0],
  ['Kafka lag max, s', (r) => r.kafkaMaxLagS, 2],
  ['  reached at, s into the load', (r) => r.kafkaMaxLagAtS, 0],
  ['Kafka lag at load end, s', (r) => r.kafkaLagAtEndS, 2],
  ['Kafka catch-up after the load, s', (r) => r.kafkaCatchUpS, 2],
  ['destination lag max, s', (r) => r.destMaxLagS, 2],
  ['  reached at, s into the load', (r) => r.destMaxLagAtS, 0],
  ['destination lag at load end, s', (r) => r.destLagAtEndS, 2],
  ['destination equal to source, s after the load', (r) => r.destEqualAfterS, 2],
  ['pipeline CPU s, load and catch-up', (r) => r.cpuSecondsLoadAndCatchUp, 1],
  ['pipeline CPU s, whole run', (r) => r.cpuSecondsTotal, 1],
  ['TOAST updates in Kafka', (r) => r.toastUpdatesInKafka?.updates, 0],
  ['  of them with the placeholder', (r) => r.toastUpdatesInKafka?.placeholder, 0],
  ['destination rows differing (all tables)', (r) => (r.rows ? sum(r.rows, 'differ') : undefined), 0],
  [
    '  of them in pgbench tables',
    (r) => (r.rows ? sum(r.rows, 'differ', (t) => t.startsWith('pgbench')) : undefined),
    0,
  ],
  ['  of them in toast_docs', (r) => r.rows?.toast_docs?.differ, 0],
  ['toast_docs rows holding the placeholder', (r) => r.toastPlaceholderRows, 0],
];

function sum(rows, field, keep = () => true) {
  return Object.entries(rows)
    .filter(([t]) => keep(t))
    .reduce((n, [, v]) => n + v[field], 0);
}

const show = (v, digits) =>
  v === undefined || v === null || Number.isNaN(v) ? '-' : Number(v).toFixed(digits);

function ratio(a, b) {
  if (a === undefined || b === undefined || a === null || b === null) return '-';
  if (b === 0) return a === 0 ? '1.00' : '-';
  return (a / b).toFixed(2);
}

/** Prints the runs side by side, each run's failure if any, and the ratios. */
function printReport({ results }) {
  const ferry = results.find((r) => r.pipeline.startsWith('pgferry'));
  const dbzSink = results.find((r) => r.pipeline.includes('JDBC sink'));
  const dbzSource = results.find((r) => r.pipeline === 'Debezium source');
  const short = (r) => (r === ferry ? 'pgferry' : r === dbzSink ? 'Dbz+sink' : 'Dbz source');
  const heads = [
    ...results.map(short),
    ...(ferry && dbzSink ? ['pgferry/Dbz+sink'] : []),
    ...(ferry && dbzSource ? ['pgferry/Dbz source'] : []),
  ];
  const width = 50;
  const col = Math.max(...heads.map((h) => h.length)) + 2;
  console.log(`\n${results.map((r) => `${short(r)}: ${r.pipeline}`).join('; ')}`);
  console.log(`${''.padEnd(width)}${heads.map((h) => h.padStart(col)).join('')}`);
  for (const [label, get, digits] of ROWS) {
    const cells = results.map((r) => show(get(r), digits));
    if (cells.every((c) => c === '-')) continue;
    if (ferry && dbzSink) cells.push(ratio(get(ferry), get(dbzSink)));
    if (ferry && dbzSource) cells.push(ratio(get(ferry), get(dbzSource)));
    console.log(`${label.padEnd(width)}${cells.map((c) => c.padStart(col)).join('')}`);
  }
  for (const r of results) {
    if (r.error) console.log(`\n${r.pipeline} FAILED: ${r.error}`);
    if (r.stopError) console.log(`\n${r.pipeline} did not stop cleanly: ${r.stopError}`);
  }
  for (const r of results.filter((x) => x.rows)) {
    const bad = Object.entries(r.rows).filter(([, v]) => v.differ);
    if (bad.length)
      console.log(
        `${r.pipeline}: ${bad.map(([t, v]) => `${t} ${v.differ} of ${v.sourceRows} (missing ${v.missing}, extra ${v.extra}, changed ${v.changed})`).join('; ')}`,
      );
  }
}

module.exports = { printReport };
