import type { Client } from 'pg';
import { PgferryError, describeError, type TaskSpec } from '@pgferry/core';
import {
  connect,
  describeEndpoint,
  measureRowWidths,
  quoteQualified,
  resolveEndpoint,
  type Endpoint,
  type RowWidth,
} from '@pgferry/pg';
import { checkKafka, type KafkaFacts, type KafkaFactsReader } from './check-kafka';
import { checkConflicts, checkNames } from './check-destination';
import { checkSnapshotCompression } from './check-platform';
import { checkFilters } from './check-filters';
import { checkDestinationPrivileges, checkSourcePrivileges } from './check-privileges';
import {
  checkDestinationWritable,
  checkEncoding,
  checkDdlCapture,
  checkLogicalDecoding,
  checkSameDatabase,
  checkTaskSlot,
  checkVersions,
  sameDatabase,
} from './check-server';
import { checkKeys, checkSelection, checkSizes, checkSpecNames, checkUnsupported } from './check-tables';
import { readDestinationFacts } from './pg-destination-facts';
import { readSourceFacts } from './pg-source-facts';
import type { DestinationFacts, SourceFacts } from './precheck-facts';
import { makeReport, type PrecheckItem, type PrecheckReport } from './precheck-report';

export interface PrecheckOptions {
  /** application_name of the two precheck sessions; default 'pgferry precheck'. */
  applicationName?: string;
  /** Per connection attempt; default that of connect() (15 s). */
  connectTimeoutMs?: number;
  /** Reads the Kafka facts of the task (check-kafka.ts); without it the Kafka section is left out. */
  kafka?: KafkaFactsReader;
}

type Role = 'source' | 'destination';

/**
 * The full precheck of a task (DESIGN phase 1). Read-only on both servers: it opens one session
 * on each, reads catalogs and has_*_privilege answers, and writes nothing anywhere, so it may run
 * any number of times, before the first start and before every resume.
 *
 * Never throws for a condition of the world: an unreachable server, a wrong password, a spec
 * naming a missing table or a catalog query that fails each become a failed item. When a server
 * cannot be reached, or both sides are the same database, the report stops there.
 */
export async function runPrecheck(spec: TaskSpec, options: PrecheckOptions = {}): Promise<PrecheckReport> {
  const items: PrecheckItem[] = [];
  const opened = await Promise.all(
    (['source', 'destination'] as const).map((role) => open(spec, role, options)),
  );
  const [source, destination] = opened.map((o) => o.client);
  try {
    items.push(...opened.map((o) => o.item));
    if (!source || !destination) return makeReport(items);
    const specNames = checkSpecNames(spec.objects);
    if (specNames.length > 0) return makeReport([...items, ...specNames]);

    let src: SourceFacts;
    let dst: DestinationFacts;
    try {
      src = await readSourceFacts(source, spec);
    } catch (err) {
      return makeReport([...items, catalogFailure('source', err)]);
    }
    const tables = src.selection.tables;
    try {
      dst = await readDestinationFacts(destination, spec.name, {
        schemas: tables.map((t) => t.targetSchema),
        tables: tables.map((t) => ({ schema: t.targetSchema, table: t.targetTable })),
      });
    } catch (err) {
      return makeReport([...items, catalogFailure('destination', err)]);
    }

    const destinationName = describeEndpoint(opened[1].endpoint!);
    items.push(checkSameDatabase(src.db, dst.db, destinationName));
    if (sameDatabase(src.db, dst.db)) return makeReport(items);
    items.push(checkVersions(src, dst));
    items.push(...checkLogicalDecoding(spec, src));
    const slot = checkTaskSlot(spec, src, dst);
    if (slot) items.push(slot);
    items.push(...checkSelection(src));
    items.push(...checkSourcePrivileges(spec, src));
    const ddl = checkDdlCapture(spec, src);
    if (ddl) items.push(ddl);
    const writable = checkDestinationWritable(dst, destinationName);
    if (writable) items.push(writable);
    items.push(...checkDestinationPrivileges(spec, dst, tables));
    items.push(...checkKeys(spec, src));
    try {
      items.push(...(await checkFilters(spec, source, src)));
    } catch (err) {
      items.push(catalogFailure('source', err));
    }
    items.push(...checkConflicts(spec, tables, dst));
    items.push(...checkNames(tables, dst));
    items.push(checkEncoding(src, dst));
    const compression = checkSnapshotCompression(spec);
    if (compression) items.push(compression);
    items.push(...checkUnsupported(spec, src));
    items.push(checkSizes(src));
    if (options.kafka) items.push(...(await kafkaSection(options.kafka, source, destination, tables)));
    return makeReport(items);
  } finally {
    await Promise.all([source?.end().catch(() => undefined), destination?.end().catch(() => undefined)]);
  }
}

interface Opened {
  client?: Client;
  endpoint?: Endpoint;
  item: PrecheckItem;
}

/** Resolves and connects one side; the item carries the classified error (never a password). */
async function open(spec: TaskSpec, role: Role, options: PrecheckOptions): Promise<Opened> {
  const base = { id: `connectivity:${role}`, name: `${role} connectivity` };
  let endpoint: Endpoint | undefined;
  try {
    endpoint = resolveEndpoint(spec[role], role);
    const client = await connect(endpoint, role, {
      applicationName: options.applicationName ?? 'pgferry precheck',
      connectTimeoutMs: options.connectTimeoutMs,
    });
    return {
      client,
      endpoint,
      item: {
        ...base,
        level: 'passed',
        object: describeEndpoint(endpoint),
        message: `connected to ${describeEndpoint(endpoint)}`,
      },
    };
  } catch (err) {
    return {
      endpoint,
      item: {
        ...base,
        level: 'failed',
        object: endpoint ? describeEndpoint(endpoint) : role,
        message: errorText(err),
      },
    };
  }
}

/** The Kafka section: the widest row measured on the source, then the reader's facts. */
async function kafkaSection(
  read: KafkaFactsReader,
  source: Client,
  destination: Client,
  tables: SourceFacts['selection']['tables'],
): Promise<PrecheckItem[]> {
  let widths: RowWidth[];
  try {
    widths = await measureRowWidths(source, tables);
  } catch (err) {
    return [
      { id: 'kafka:message-size', name: 'kafka message size', level: 'failed', message: errorText(err) },
    ];
  }
  const widest = widths.reduce<RowWidth | null>((w, r) => (!w || r.bytes > w.bytes ? r : w), null);
  let facts: KafkaFacts;
  try {
    facts = await read({ tables, rowWidths: widths, destination });
  } catch (err) {
    return [{ id: 'kafka:topics', name: 'kafka topics', level: 'failed', message: errorText(err) }];
  }
  return checkKafka(
    facts,
    {
      table: widest && widest.bytes > 0 ? quoteQualified(widest.schema, widest.table) : null,
      bytes: widest?.bytes ?? 0,
      sampled: widest?.sampled ?? false,
    },
    tables.reduce((n, t) => n + t.bytes, 0),
  );
}

function catalogFailure(role: Role, err: unknown): PrecheckItem {
  return {
    id: `catalog:${role}`,
    name: `${role} catalog`,
    level: 'failed',
    message: `the precheck could not read the ${role} catalog: ${errorText(err)}`,
  };
}

/** A classified error's message already holds the driver's words, the object and the hint. */
function errorText(err: unknown): string {
  return err instanceof PgferryError ? err.message : describeError(err);
}
