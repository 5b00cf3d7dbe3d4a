import { ProtocolError, Reader, Writer } from './buffer-io';

/**
 * A small declarative codec for non-flexible Kafka message versions. A message is a list of
 * fields; each field has a type and the version range it exists in (as in Kafka's
 * clients/src/main/resources/common/message/*.json, "versions": "3+" becomes since 3).
 * Absent fields decode to their zero value and are skipped on encode, so handlers can use one
 * shape for every version.
 */
export type Prim =
  'int8' | 'int16' | 'int32' | 'int64' | 'bool' | 'string' | 'nstring' | 'bytes' | 'nbytes' | 'uuid';
export type FieldType = Prim | Field[] | { array: FieldType; nullable?: boolean };

export interface Field {
  name: string;
  type: FieldType;
  since: number;
  until: number;
}

/** A field present in versions [since, until]. */
export function f(name: string, type: FieldType, since = 0, until = Infinity): Field {
  return { name, type, since, until };
}
export const arr = (type: FieldType): FieldType => ({ array: type });
export const narr = (type: FieldType): FieldType => ({ array: type, nullable: true });

function zero(type: FieldType): unknown {
  if (Array.isArray(type)) return {};
  if (typeof type === 'object') return type.nullable ? null : [];
  switch (type) {
    case 'int64':
      return 0n;
    case 'bool':
      return false;
    case 'string':
      return '';
    case 'nstring':
    case 'nbytes':
      return null;
    case 'bytes':
    case 'uuid':
      return Buffer.alloc(0);
    default:
      return 0;
  }
}

function readType(r: Reader, type: FieldType, version: number): unknown {
  if (Array.isArray(type)) return readStruct(r, type, version);
  if (typeof type === 'object') {
    const n = r.int32();
    if (n < 0) {
      if (!type.nullable) return [];
      return null;
    }
    // Every element takes at least one byte: a longer array is a message that does not parse.
    if (n > r.remaining())
      throw new ProtocolError(`array length ${n} exceeds the message's ${r.remaining()} bytes left`);
    const out = new Array(n);
    for (let i = 0; i < n; i++) out[i] = readType(r, type.array, version);
    return out;
  }
  switch (type) {
    case 'int8':
      return r.int8();
    case 'int16':
      return r.int16();
    case 'int32':
      return r.int32();
    case 'int64':
      return r.int64();
    case 'bool':
      return r.bool();
    case 'string':
      return r.string();
    case 'nstring':
      return r.nstring();
    case 'bytes':
      return r.bytes();
    case 'nbytes':
      return r.nbytes();
    case 'uuid':
      return r.uuid();
  }
}

export function readStruct<T = Record<string, unknown>>(r: Reader, fields: Field[], version: number): T {
  const out: Record<string, unknown> = {};
  for (const fd of fields) {
    out[fd.name] = version >= fd.since && version <= fd.until ? readType(r, fd.type, version) : zero(fd.type);
  }
  return out as T;
}

function writeType(w: Writer, type: FieldType, value: unknown, version: number): void {
  if (Array.isArray(type)) {
    writeStruct(w, type, (value ?? {}) as Record<string, unknown>, version);
    return;
  }
  if (typeof type === 'object') {
    if (value === null || value === undefined) {
      w.int32(type.nullable ? -1 : 0);
      return;
    }
    const items = value as unknown[];
    w.int32(items.length);
    for (const item of items) writeType(w, type.array, item, version);
    return;
  }
  switch (type) {
    case 'int8':
      w.int8((value as number) ?? 0);
      return;
    case 'int16':
      w.int16((value as number) ?? 0);
      return;
    case 'int32':
      w.int32((value as number) ?? 0);
      return;
    case 'int64':
      w.int64((value as bigint | number) ?? 0n);
      return;
    case 'bool':
      w.bool(Boolean(value));
      return;
    case 'string':
      w.string(value as string);
      return;
    case 'nstring':
      w.nstring(value as string | null);
      return;
    case 'bytes':
      w.bytes(value as Buffer);
      return;
    case 'nbytes':
      w.nbytes(value as Buffer | null);
      return;
    case 'uuid':
      w.uuid(value as Buffer);
      return;
  }
}

export function writeStruct(
  w: Writer,
  fields: Field[],
  value: Record<string, unknown>,
  version: number,
): void {
  for (const fd of fields) {
    if (version >= fd.since && version <= fd.until) writeType(w, fd.type, value[fd.name], version);
  }
}
