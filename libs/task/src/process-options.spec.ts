import { parseTaskSpec } from '@pgferry/core';
import type { SelectedTable } from '@pgferry/pg';
import type { RegistryClient } from '@pgferry/avro';
import type { ControlStore } from '@pgferry/control';
import type { KafkaClient } from './kafka-client';
import type { MigrationEvent } from './migration-event';
import type { CaptureSettings, ProcessConfig, StreamSettings } from './process-config';
import { snapshotCaptureOptions, streamCaptureOptions } from './process-options';

const spec = parseTaskSpec({
  name: 'orders',
  source: { url: 'postgres://app:secret@src.example:5433/shop' },
  destination: { url: 'postgres://app:secret@dst.example:5434/shop' },
  migrationTypes: { incremental: true },
  options: {
    chunkRows: 1234,
    snapshotWorkers: 3,
    consistency: 'transactional',
    retry: { connectionMinutes: 2 },
  },
});
const tables = [
  { schema: 'public', table: 'orders', targetSchema: 'public', targetTable: 'orders' },
] as SelectedTable[];
const common = { spec, registryUrl: 'http://registry.example:8081', topicPrefix: 'pgferry.orders' };

/** What a child reads back from its file: the settings as JSON, the spec validated again. */
function asChildReadsIt<S extends ProcessConfig>(config: S): S {
  const raw = JSON.parse(JSON.stringify(config)) as S;
  return { ...raw, spec: parseTaskSpec(raw.spec) };
}

/** The options without their callbacks, which toEqual cannot compare. */
const data = (o: object) => JSON.parse(JSON.stringify(o));

describe('process options', () => {
  const kafka = {} as KafkaClient;
  const registry = {} as RegistryClient;
  const control = {} as ControlStore;

  it('gives the snapshot capture the same options in a child as in the controller', () => {
    const settings: CaptureSettings = {
      ...common,
      role: 'capture',
      partitions: 6,
      tables,
      snapshotName: 'S1',
    };
    const events: MigrationEvent[] = [];
    const clients = { kafka, registry, control, emit: (e: MigrationEvent) => events.push(e) };
    const inProcess = snapshotCaptureOptions(settings, clients);
    const child = snapshotCaptureOptions(
      asChildReadsIt({ ...settings, kafka: { brokers: ['k:9092'] } }),
      clients,
    );
    expect(data(child)).toEqual(data(inProcess));
    expect(inProcess).toMatchObject({
      sourceDatabase: 'shop',
      topicPrefix: 'pgferry.orders',
      partitions: 6,
      snapshotName: 'S1',
      chunkRows: 1234,
      workers: 3,
    });
    expect(inProcess.source).toMatchObject({ host: 'src.example', port: 5433 });
    inProcess.onProgress!({ table: 'public.orders', rows: 10, bytes: 100 });
    expect(events).toEqual([{ kind: 'captured', table: 'public.orders', rows: 10, bytes: 100 }]);
  });

  it('gives the stream capture the task retry windows and its consistency, in a child as in the controller', () => {
    const settings: StreamSettings = { ...common, role: 'stream', partitions: 6, tables };
    const stop = new AbortController().signal;
    const clients = { kafka, emit: () => undefined, stop };
    const inProcess = streamCaptureOptions(settings, clients);
    const child = streamCaptureOptions(
      asChildReadsIt({ ...settings, kafka: { brokers: ['k:9092'] } }),
      clients,
    );
    expect(data(child)).toEqual(data(inProcess));
    expect(inProcess).toMatchObject({
      task: 'orders',
      prefix: 'pgferry.orders',
      registryUrl: 'http://registry.example:8081',
      retry: { connectionMinutes: 2, otherMinutes: 10 },
      wholeTransactions: true,
    });
    expect(inProcess.destination).toMatchObject({ host: 'dst.example', port: 5434 });
    expect(inProcess.stop).toBe(stop);
  });
});
