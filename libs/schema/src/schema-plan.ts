import type { ObjectIdentity, CFunction } from './schema-catalog';
import type { TocEntry } from './toc';

export type SchemaSection = 'pre-data' | 'post-data';

/** A TOC entry chosen for restore, with the names the catalog gave it. */
export interface PlannedEntry {
  dumpId: number;
  section: SchemaSection;
  /** pg_dump's kind: TABLE, INDEX, FK CONSTRAINT ... */
  kind: string;
  /** For messages: 'table "Sales Dept"."Order ""Lines"""', 'COMMENT FUNCTION f() in schema app'. */
  object: string;
  /** The line for the `pg_restore -L` list file. */
  line: string;
  dependencies: number[];
  /** Set when the entry carries a catalog address (exact names, unquoted). */
  identity?: ObjectIdentity;
}

export interface SkippedObject {
  dumpId: number;
  kind: string;
  object: string;
  reason: string;
}

/** Something the user should look at; the step went on without the object. */
export interface SchemaAlert {
  item: string;
  level: 'alert';
  object: string;
  message: string;
}

export interface SchemaPlan {
  preData: PlannedEntry[];
  postData: PlannedEntry[];
  skipped: SkippedObject[];
  alerts: SchemaAlert[];
}

export interface PlanInputs {
  /** `pg_restore -l -v --section=pre-data` entries. */
  preData: TocEntry[];
  /** `pg_restore -l -v --section=post-data` entries. */
  postData: TocEntry[];
  identities: Map<number, ObjectIdentity>;
  cFunctions: CFunction[];
  /** Extension names the destination can install; undefined: do not check. */
  availableExtensions?: Set<string>;
  restorePrivileges: boolean;
}

/** Handled by pg_restore itself whatever the list says. */
const SESSION_ENTRIES = new Set(['ENCODING', 'STDSTRINGS', 'SEARCHPATH']);
const DATABASE_ENTRIES = new Set(['DATABASE', 'DATABASE PROPERTIES']);
const PRIVILEGE_ENTRIES = new Set(['ACL', 'DEFAULT ACL']);
/** Attached to another object: follow it silently instead of raising an alert of their own. */
const DECORATIONS = new Set(['COMMENT', 'ACL', 'SECURITY LABEL']);
const FUNCTION_CATALOG = 1255;

/** 'table app.customers' from the catalog, or 'COMMENT TABLE customers in schema app' from the line. */
export function describeTocEntry(entry: TocEntry, identity?: ObjectIdentity): string {
  if (identity) return `${identity.type} ${identity.identity}`;
  return `${entry.desc} ${entry.tag}${entry.schema ? ` in schema ${entry.schema}` : ''}`;
}

/**
 * Decides, per TOC entry, whether it is restored, and in which section (as pg_dump assigned it:
 * the two listings come from `pg_restore --section`). Left out, each with its reason:
 *  - database-level entries (DATABASE, its COMMENT/ACL): they belong to the source database;
 *  - ACL and DEFAULT ACL unless privileges are restored;
 *  - extensions the destination cannot install (alert: install the package or drop it);
 *  - C-language functions outside extensions (alert: install the library or drop it);
 *  - every entry depending, directly or not, on an entry left out for the last two reasons
 *    (an alert each, except for comments and privileges, which just follow their object).
 * Order is kept: pg_dump sorted the entries so that dependencies come first. Pure.
 */
export function planSchema(inputs: PlanInputs): SchemaPlan {
  const cFunctions = new Map(inputs.cFunctions.map((f) => [f.oid, f]));
  const blocked = new Map<number, string>();
  const databaseLevel = new Set<number>();
  const skipped: SkippedObject[] = [];
  const alerts: SchemaAlert[] = [];
  const out: Record<SchemaSection, PlannedEntry[]> = { 'pre-data': [], 'post-data': [] };
  const sections: [SchemaSection, TocEntry[]][] = [
    ['pre-data', inputs.preData],
    ['post-data', inputs.postData],
  ];
  for (const [section, entries] of sections) {
    for (const entry of entries) {
      const identity = inputs.identities.get(entry.dumpId);
      const object = describeTocEntry(entry, identity);
      const skip = (reason: string, block: boolean) => {
        skipped.push({ dumpId: entry.dumpId, kind: entry.desc, object, reason });
        if (block) blocked.set(entry.dumpId, object);
      };
      if (SESSION_ENTRIES.has(entry.desc)) continue;
      if (DATABASE_ENTRIES.has(entry.desc) || entry.dependencies.some((d) => databaseLevel.has(d))) {
        skip('database-level property of the source database; not migrated', false);
        databaseLevel.add(entry.dumpId);
        continue;
      }
      const blocker = entry.dependencies.find((d) => blocked.has(d));
      if (blocker !== undefined) {
        const what = blocked.get(blocker)!;
        skip(`depends on ${what}, which is not restored`, true);
        if (!DECORATIONS.has(entry.desc)) {
          alerts.push({
            item: 'dependent object',
            level: 'alert',
            object,
            message: `${object} depends on ${what}, which is not restored, so it is not restored either; resolve the alert for ${what} and run the schema migration again`,
          });
        }
        continue;
      }
      if (PRIVILEGE_ENTRIES.has(entry.desc) && !inputs.restorePrivileges) {
        skip('privileges are not restored (restoreOwnership is off)', false);
        continue;
      }
      const extension = entry.desc === 'EXTENSION' ? (identity?.names[0] ?? entry.tag) : undefined;
      if (
        extension !== undefined &&
        inputs.availableExtensions &&
        !inputs.availableExtensions.has(extension)
      ) {
        skip('the extension is not available on the destination server', true);
        alerts.push({
          item: 'extension',
          level: 'alert',
          object,
          message: `extension ${extension} is not available on the destination server, so it is not restored: install the package that provides it on the destination server (contrib modules: the postgresql-contrib package of the server's version), or drop the extension and the objects that use it from the source`,
        });
        continue;
      }
      const cFunction = entry.catalogOid === FUNCTION_CATALOG ? cFunctions.get(entry.objectOid) : undefined;
      if (cFunction) {
        skip(`C-language function (library ${cFunction.library}) outside an extension`, true);
        alerts.push({
          item: 'C-language function',
          level: 'alert',
          object: cFunction.identity,
          message: `function ${cFunction.identity} is written in C (library ${cFunction.library}) and does not belong to an extension, so it is not restored: install its shared library on the destination server and create the function there, or drop it from the source`,
        });
        continue;
      }
      out[section].push({
        dumpId: entry.dumpId,
        section,
        kind: entry.desc,
        object,
        line: entry.line,
        dependencies: entry.dependencies,
        ...(identity ? { identity } : {}),
      });
    }
  }
  return { preData: out['pre-data'], postData: out['post-data'], skipped, alerts };
}

/** Entries per kind: { TABLE: 3, INDEX: 2 }. */
export function countByKind(entries: readonly { kind: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of entries) counts[e.kind] = (counts[e.kind] ?? 0) + 1;
  return counts;
}

/**
 * Splits entries into those to restore and those left out because the object they create
 * already exists (`exists`, by dump id); decorations (COMMENT, ACL, SECURITY LABEL) of such an
 * object are left out too, so that a reused object keeps the destination's own.
 */
export function withoutExisting(
  entries: readonly PlannedEntry[],
  exists: Set<number>,
  reason: string,
): { restore: PlannedEntry[]; skipped: SkippedObject[] } {
  const restore: PlannedEntry[] = [];
  const skipped: SkippedObject[] = [];
  for (const e of entries) {
    const decorationOfExisting = DECORATIONS.has(e.kind) && e.dependencies.some((d) => exists.has(d));
    if (exists.has(e.dumpId) || decorationOfExisting) {
      skipped.push({ dumpId: e.dumpId, kind: e.kind, object: e.object, reason });
    } else restore.push(e);
  }
  return { restore, skipped };
}
