import { Type, types } from 'avsc';

export const COMPATIBILITY_LEVELS = [
  'NONE',
  'BACKWARD',
  'BACKWARD_TRANSITIVE',
  'FORWARD',
  'FORWARD_TRANSITIVE',
  'FULL',
  'FULL_TRANSITIVE',
] as const;
export type CompatibilityLevel = (typeof COMPATIBILITY_LEVELS)[number];

/** Confluent's default when neither the subject nor the global config sets a level. */
export const DEFAULT_COMPATIBILITY: CompatibilityLevel = 'BACKWARD';

/** Case-insensitive, as Confluent's CompatibilityLevel.forName; undefined for anything else. */
export function parseCompatibilityLevel(value: unknown): CompatibilityLevel | undefined {
  if (typeof value !== 'string') return undefined;
  const upper = value.toUpperCase();
  return (COMPATIBILITY_LEVELS as readonly string[]).includes(upper)
    ? (upper as CompatibilityLevel)
    : undefined;
}

/** The error types of Avro's SchemaCompatibility, which Confluent reports. */
export type IncompatibilityType =
  | 'NAME_MISMATCH'
  | 'FIXED_SIZE_MISMATCH'
  | 'MISSING_ENUM_SYMBOLS'
  | 'READER_FIELD_MISSING_DEFAULT_VALUE'
  | 'TYPE_MISMATCH'
  | 'MISSING_UNION_BRANCH'
  | 'AVSC_RESOLUTION_FAILED'
  /** The earlier version's stored text cannot be parsed (another schema type, or invalid). */
  | 'OLD_SCHEMA_UNUSABLE';

export interface Incompatibility {
  errorType: IncompatibilityType;
  /** JSON-pointer-like location in the reader schema, e.g. `/fields/1/type`. */
  path: string;
  description: string;
  additionalInfo: string;
}

/** What to call the two schemas in messages: BACKWARD reads old data with the new schema. */
export interface SchemaRoles {
  reader: 'new' | 'old';
  writer: 'new' | 'old';
}

type Kind = 'record' | 'enum' | 'fixed' | 'array' | 'map' | 'union' | string;

/**
 * Why data written with `writer` cannot be read with `reader`; empty when it can. Follows Avro's
 * SchemaCompatibility (the rules Confluent applies): named types match on their unqualified name
 * or a reader alias; a reader field missing from the writer needs a default; writer enum symbols
 * missing from the reader need a reader enum default; every writer union branch must be readable;
 * int -> long/float/double, long -> float/double, float -> double and string <-> bytes promote.
 *
 * The verdict is then confirmed with avsc itself (`reader.createResolver(writer)` with
 * `ignoreNamespaces`, the same name rule), because the pipeline decodes with avsc: a pair this
 * walk accepts but avsc cannot resolve is reported as AVSC_RESOLUTION_FAILED. Pure.
 */
export function readIncompatibilities(
  reader: Type,
  writer: Type,
  roles: SchemaRoles = { reader: 'new', writer: 'old' },
): Incompatibility[] {
  const found: Incompatibility[] = [];
  new Walk(roles, found).check(reader, writer, '/');
  if (found.length === 0) {
    try {
      reader.createResolver(writer, { ignoreNamespaces: true });
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      found.push({
        errorType: 'AVSC_RESOLUTION_FAILED',
        path: '/',
        description: `The ${roles.reader} schema cannot read data written with the ${roles.writer} schema: ${reason}`,
        additionalInfo: reason,
      });
    }
  }
  return found;
}

/** A registered version a candidate is checked against. */
export interface PreviousVersion {
  version: number;
  schema: string;
  /** Undefined when the stored schema cannot be parsed; `unusable` says why. */
  type?: Type;
  unusable?: string;
}

/**
 * Checks `candidate` against a subject's non-deleted versions (`previous`, oldest first) under
 * `level`, as Confluent does: BACKWARD means the candidate reads data written with an earlier
 * schema, FORWARD that an earlier schema reads the candidate's data, FULL both; the *_TRANSITIVE
 * levels check every earlier version (newest first), the others only the latest. Returns
 * Confluent's message list for the first version that fails (the reasons, then
 * `{oldSchemaVersion: n}`, `{oldSchema: '...'}`, `{compatibility: '...'}`), or [] when compatible.
 * Pure.
 */
export function compatibilityErrors(
  level: CompatibilityLevel,
  candidate: Type,
  previous: readonly PreviousVersion[],
): string[] {
  if (level === 'NONE' || previous.length === 0) return [];
  const against = level.endsWith('_TRANSITIVE') ? [...previous].reverse() : previous.slice(-1);
  const backward = level.startsWith('BACKWARD') || level.startsWith('FULL');
  const forward = level.startsWith('FORWARD') || level.startsWith('FULL');
  for (const old of against) {
    const found: Incompatibility[] = [];
    if (!old.type) {
      found.push({
        errorType: 'OLD_SCHEMA_UNUSABLE',
        path: '/',
        description: `The old schema cannot be checked against: ${old.unusable ?? 'it was not parsed'}`,
        additionalInfo: old.unusable ?? '',
      });
    } else {
      if (backward)
        found.push(...readIncompatibilities(candidate, old.type, { reader: 'new', writer: 'old' }));
      if (forward)
        found.push(...readIncompatibilities(old.type, candidate, { reader: 'old', writer: 'new' }));
    }
    if (found.length > 0) {
      return [
        ...found.map(formatIncompatibility),
        `{oldSchemaVersion: ${old.version}}`,
        `{oldSchema: '${old.schema}'}`,
        `{compatibility: '${level}'}`,
      ];
    }
  }
  return [];
}

/** Confluent's rendering of one difference (not JSON: it is what Confluent prints). */
export function formatIncompatibility(found: Incompatibility): string {
  return `{errorType:'${found.errorType}', description:'${found.description}', additionalInfo:'${found.additionalInfo}'}`;
}

class Walk {
  /** Pairs being checked; a recursive schema meets them again and assumes them compatible. */
  private readonly inProgress = new Map<Type, Set<Type>>();

  constructor(
    private readonly roles: SchemaRoles,
    private readonly found: Incompatibility[],
  ) {}

  check(reader: Type, writer: Type, path: string): void {
    const r = underlying(reader);
    const w = underlying(writer);
    const seen = this.inProgress.get(r) ?? new Set<Type>();
    if (seen.has(w)) return;
    seen.add(w);
    this.inProgress.set(r, seen);
    try {
      this.checkPair(r, w, path);
    } finally {
      seen.delete(w);
    }
  }

  private checkPair(r: Type, w: Type, path: string): void {
    const rk = kind(r);
    const wk = kind(w);
    const { reader: rRole, writer: wRole } = this.roles;
    if (rk === wk) {
      switch (rk) {
        case 'record':
          return this.checkRecord(r as types.RecordType, w as types.RecordType, path);
        case 'enum':
          if (!this.checkName(r, w, path)) return;
          return this.checkEnum(r as types.EnumType, w as types.EnumType, path);
        case 'fixed':
          if (!this.checkName(r, w, path)) return;
          if ((r as types.FixedType).size !== (w as types.FixedType).size) {
            this.report(
              'FIXED_SIZE_MISMATCH',
              join(path, 'size'),
              `The size of FIXED type field at path '${join(path, 'size')}' in the ${rRole} schema does not match with the ${wRole} schema`,
              `expected: ${(w as types.FixedType).size}, found: ${(r as types.FixedType).size}`,
            );
          }
          return;
        case 'array':
          return this.check(
            (r as types.ArrayType).itemsType,
            (w as types.ArrayType).itemsType,
            join(path, 'items'),
          );
        case 'map':
          return this.check(
            (r as types.MapType).valuesType,
            (w as types.MapType).valuesType,
            join(path, 'values'),
          );
        case 'union':
          (w as types.UnwrappedUnionType).types.forEach((branch, i) =>
            this.readBranch(r, branch, join(path, i)),
          );
          return;
        default:
          return;
      }
    }
    if (wk === 'union') {
      (w as types.UnwrappedUnionType).types.forEach((branch, i) => this.readBranch(r, branch, join(path, i)));
      return;
    }
    if (rk === 'union') return this.readBranch(r, w, path);
    if (promotes(wk, rk)) return;
    this.report(
      'TYPE_MISMATCH',
      path,
      `The type (path '${path}') of a field in the ${rRole} schema does not match with the ${wRole} schema`,
      `reader type: ${rk.toUpperCase()} not compatible with writer type: ${wk.toUpperCase()}`,
    );
  }

  /** A writer value of type `w` must fit some branch of `r` (or `r` itself when not a union). */
  private readBranch(r: Type, w: Type, path: string): void {
    if (kind(r) !== 'union') return this.check(r, w, path);
    const fits = (r as types.UnwrappedUnionType).types.some((branch) => {
      const probe: Incompatibility[] = [];
      const walk = new Walk(this.roles, probe);
      for (const [k, v] of this.inProgress) walk.inProgress.set(k, new Set(v));
      walk.check(branch, w, path);
      return probe.length === 0;
    });
    if (!fits) {
      this.report(
        'MISSING_UNION_BRANCH',
        path,
        `The ${this.roles.reader} schema is missing a type inside a union field at path '${path}' in the ${this.roles.writer} schema`,
        `reader union lacking writer type: ${kind(underlying(w)).toUpperCase()}`,
      );
    }
  }

  private checkRecord(r: types.RecordType, w: types.RecordType, path: string): void {
    if (!this.checkName(r, w, path)) return;
    const writerFields = new Map(w.fields.map((f) => [f.name, f]));
    r.fields.forEach((field, i) => {
      const fieldPath = join(path, 'fields', i);
      const match = [field.name, ...(field.aliases ?? [])]
        .map((n) => writerFields.get(n))
        .find((f) => f !== undefined);
      if (match) return this.check(field.type, match.type, join(fieldPath, 'type'));
      if (field.defaultValue() === undefined) {
        this.report(
          'READER_FIELD_MISSING_DEFAULT_VALUE',
          fieldPath,
          `The field '${field.name}' at path '${fieldPath}' in the ${this.roles.reader} schema has no default value and is missing in the ${this.roles.writer} schema`,
          field.name,
        );
      }
    });
  }

  private checkEnum(r: types.EnumType, w: types.EnumType, path: string): void {
    const readerSymbols = new Set(r.symbols);
    const missing = w.symbols.filter((s) => !readerSymbols.has(s));
    const readerDefault = (r as unknown as { default?: string }).default;
    if (missing.length > 0 && readerDefault === undefined) {
      this.report(
        'MISSING_ENUM_SYMBOLS',
        join(path, 'symbols'),
        `The ${this.roles.reader} schema is missing enum symbols '${missing.join(', ')}' at path '${join(path, 'symbols')}' in the ${this.roles.writer} schema`,
        `[${missing.join(', ')}]`,
      );
    }
  }

  private checkName(r: Type, w: Type, path: string): boolean {
    const wName = w.name ?? '';
    if (unqualify(r.name ?? '') === unqualify(wName) || (r.aliases ?? []).includes(wName)) return true;
    this.report(
      'NAME_MISMATCH',
      join(path, 'name'),
      `The name of the schema has changed (path '${join(path, 'name')}')`,
      `expected: ${wName}`,
    );
    return false;
  }

  private report(errorType: IncompatibilityType, path: string, description: string, additionalInfo: string) {
    this.found.push({ errorType, path, description, additionalInfo });
  }
}

/** Avro's promotions: the writer's type on the left can be read as the reader's on the right. */
const PROMOTIONS: Record<string, string[]> = {
  int: ['long', 'float', 'double'],
  long: ['float', 'double'],
  float: ['double'],
  string: ['bytes'],
  bytes: ['string'],
};

function promotes(writerKind: Kind, readerKind: Kind): boolean {
  return PROMOTIONS[writerKind]?.includes(readerKind) ?? false;
}

function kind(type: Type): Kind {
  const name = type.typeName;
  if (name.startsWith('union')) return 'union';
  if (name === 'error') return 'record';
  return name;
}

function underlying(type: Type): Type {
  const logical = type as Partial<types.LogicalType>;
  return logical.underlyingType ?? type;
}

function unqualify(name: string): string {
  return name.slice(name.lastIndexOf('.') + 1);
}

function join(path: string, ...parts: Array<string | number>): string {
  return `${path === '/' ? '' : path}/${parts.join('/')}`;
}
