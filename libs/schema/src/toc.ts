/**
 * The table of contents of a custom-format dump, as `pg_restore -l -v` prints it:
 *
 *   219; 1259 16400 TABLE app customers postgres
 *   ;	depends on: 886 883 8
 *
 * i.e. `<dump id>; <catalog oid> <object oid> <desc> <schema> <tag> <owner>`, then in verbose mode
 * the dump ids the entry depends on. pg_restore prints schema, tag and owner unquoted and
 * space-separated (newlines become spaces; an empty schema prints as "-", an empty owner as
 * nothing), so "Sales Dept Order "Lines" postgres" is ambiguous on its own: the split below
 * takes hints (the schema and role names that exist) and callers resolve entries that carry an
 * object oid exactly through the catalog. Only the leading dump id matters to `pg_restore -L`.
 */
export interface TocEntry {
  dumpId: number;
  /** Oid of the system catalog holding the object (1259 pg_class, 1255 pg_proc, ...); 0 when none. */
  catalogOid: number;
  /** Oid of the object in that catalog; 0 when none (COMMENT, ACL, ATTACH entries). */
  objectOid: number;
  /** pg_dump's object kind: TABLE, FK CONSTRAINT, MATERIALIZED VIEW, ... */
  desc: string;
  /** null when pg_restore printed "-" (objects outside a schema). */
  schema: string | null;
  /** pg_dump's tag: the name, "table constraint" for constraints and triggers, "f(args)" for functions. */
  tag: string;
  owner: string;
  dependencies: number[];
  /** The line as pg_restore printed it, for list files. */
  line: string;
}

export interface TocSplitHints {
  /** Schema names that exist where the dump was taken: resolves schemas containing spaces. */
  schemas?: Iterable<string>;
  /** Role names that exist there: resolves owners containing spaces. */
  owners?: Iterable<string>;
}

/**
 * Every desc pg_dump 10-17 writes. Multi-word descs must be matched before their one-word prefixes
 * ("FK CONSTRAINT" before "CONSTRAINT" is not an issue, "TABLE DATA" before "TABLE" is), hence the
 * longest match wins. An unknown desc (a newer pg_dump) falls back to the first word.
 */
export const TOC_DESCS: readonly string[] = [
  'ACCESS METHOD',
  'ACL',
  'AGGREGATE',
  'BLOB',
  'BLOB METADATA',
  'BLOBS',
  'CAST',
  'CHECK CONSTRAINT',
  'COLLATION',
  'COMMENT',
  'CONSTRAINT',
  'CONVERSION',
  'DATABASE',
  'DATABASE PROPERTIES',
  'DEFAULT',
  'DEFAULT ACL',
  'DOMAIN',
  'ENCODING',
  'EVENT TRIGGER',
  'EXTENSION',
  'FK CONSTRAINT',
  'FOREIGN DATA WRAPPER',
  'FOREIGN SERVER',
  'FOREIGN TABLE',
  'FUNCTION',
  'INDEX',
  'INDEX ATTACH',
  'LARGE OBJECT',
  'LARGE OBJECTS',
  'MATERIALIZED VIEW',
  'MATERIALIZED VIEW DATA',
  'OPERATOR',
  'OPERATOR CLASS',
  'OPERATOR FAMILY',
  'POLICY',
  'PROCEDURAL LANGUAGE',
  'PROCEDURE',
  'PUBLICATION',
  'PUBLICATION TABLE',
  'PUBLICATION TABLES IN SCHEMA',
  'ROW SECURITY',
  'RULE',
  'SCHEMA',
  'SEARCHPATH',
  'SECURITY LABEL',
  'SEQUENCE',
  'SEQUENCE OWNED BY',
  'SEQUENCE SET',
  'SERVER',
  'SHELL TYPE',
  'STATISTICS',
  'STATISTICS DATA',
  'STDSTRINGS',
  'SUBSCRIPTION',
  'SUBSCRIPTION TABLE',
  'TABLE',
  'TABLE ATTACH',
  'TABLE DATA',
  'TEXT SEARCH CONFIGURATION',
  'TEXT SEARCH DICTIONARY',
  'TEXT SEARCH PARSER',
  'TEXT SEARCH TEMPLATE',
  'TRANSFORM',
  'TRIGGER',
  'TYPE',
  'USER MAPPING',
  'VIEW',
];

const DESCS_LONGEST_FIRST = [...TOC_DESCS].sort((a, b) => b.length - a.length);
const ENTRY_LINE = /^(\d+); (\d+) (\d+) (.*)$/;
const DEPENDS_LINE = /^;\s*depends on:((?:\s+\d+)*)\s*$/;

/** Parses `pg_restore -l [-v]` output. Comment lines are skipped; entry order is kept. */
export function parseTocListing(text: string, hints: TocSplitHints = {}): TocEntry[] {
  const schemas = longestFirst(hints.schemas);
  const owners = longestFirst(hints.owners);
  const entries: TocEntry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const deps = DEPENDS_LINE.exec(line);
    if (deps) {
      const last = entries[entries.length - 1];
      if (last) last.dependencies.push(...deps[1].trim().split(/\s+/).filter(Boolean).map(Number));
      continue;
    }
    const m = ENTRY_LINE.exec(line);
    if (!m) continue;
    const { desc, schema, tag, owner } = splitTocText(m[4], schemas, owners);
    entries.push({
      dumpId: Number(m[1]),
      catalogOid: Number(m[2]),
      objectOid: Number(m[3]),
      desc,
      schema,
      tag,
      owner,
      dependencies: [],
      line,
    });
  }
  return entries;
}

function longestFirst(names: Iterable<string> | undefined): string[] {
  return [...new Set(names ?? [])]
    .map((n) => n.replace(/[\r\n]/g, ' '))
    .filter((n) => n.length > 0)
    .sort((a, b) => b.length - a.length);
}

/** Splits "<desc> <schema> <tag> <owner>"; schemas and owners are hint lists, longest first. */
export function splitTocText(
  text: string,
  schemas: readonly string[] = [],
  owners: readonly string[] = [],
): { desc: string; schema: string | null; tag: string; owner: string } {
  const desc =
    DESCS_LONGEST_FIRST.find((d) => text.startsWith(`${d} `)) ??
    text.slice(0, Math.max(0, text.indexOf(' ')));
  let rest = text.slice(desc.length + 1);
  let schema: string | null;
  if (rest.startsWith('- ')) {
    schema = null;
    rest = rest.slice(2);
  } else {
    const known = schemas.find((s) => rest.startsWith(`${s} `));
    schema = known ?? rest.slice(0, Math.max(0, rest.indexOf(' ')));
    rest = rest.slice(schema.length + 1);
  }
  let owner: string;
  if (rest.endsWith(' ')) {
    owner = '';
    rest = rest.slice(0, -1);
  } else {
    const known = owners.find((o) => rest.length > o.length + 1 && rest.endsWith(` ${o}`));
    owner = known ?? rest.slice(rest.lastIndexOf(' ') + 1);
    rest = rest.slice(0, Math.max(0, rest.length - owner.length - 1));
  }
  return { desc, schema, tag: rest, owner };
}

/** A list file for `pg_restore -L`: the entries' own lines, in the order given (restore order). */
export function formatTocList(entries: readonly { line: string }[]): string {
  return entries.map((e) => `${e.line}\n`).join('');
}
