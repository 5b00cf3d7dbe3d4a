import { newRunId, runMismatch, type RunIdentity } from './runs';

describe('runMismatch: the one line a process stops with when it is not where the task run was started', () => {
  const run: RunIdentity = {
    runId: '0123456789abcdef',
    sourceSystem: '7312000000000000001',
    sourceDatabase: 'shop',
    kafkaCluster: 'k-one',
  };

  it.each([
    [
      'the same source and Kafka',
      { sourceSystem: run.sourceSystem, sourceDatabase: 'shop', kafkaCluster: 'k-one' },
      null,
    ],
    ['an applier, which sees only Kafka', { kafkaCluster: 'k-one' }, null],
    [
      'another source system',
      { sourceSystem: '7398000000000000002', sourceDatabase: 'shop', kafkaCluster: 'k-one' },
      'task t (run 0123456789abcdef) was started against source system 7312000000000000001 database shop; this source is system 7398000000000000002 database shop: point the task at the source it was started against, or use a new --name (a new task) for this one',
    ],
    [
      'another database of the same source',
      { sourceSystem: run.sourceSystem, sourceDatabase: 'shop2' },
      'task t (run 0123456789abcdef) was started against source system 7312000000000000001 database shop; this source is system 7312000000000000001 database shop2: point the task at the source it was started against, or use a new --name (a new task) for this one',
    ],
    [
      'another Kafka',
      { kafkaCluster: 'k-two' },
      'task t (run 0123456789abcdef) keeps its records in Kafka cluster k-one; this Kafka is cluster k-two, which does not hold them: point the task at that Kafka (with the embedded broker, run from the working directory that holds its data, .pgferry/t by default), or start the task afresh into an empty destination, or use a new --name',
    ],
  ])('%s', (_what, seen, expected) => {
    expect(runMismatch('t', run, seen)).toBe(expected);
  });

  it('run ids are 16 hex digits, new each time', () => {
    const ids = new Set(Array.from({ length: 100 }, newRunId));
    expect(ids.size).toBe(100);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{16}$/);
  });
});
