import { Type } from 'avsc';
import { RegistryErrors } from './registry-errors';

/** A schema accepted by the registry: its avsc type and the text the registry stores and serves. */
export interface ParsedAvroSchema {
  type: Type;
  /**
   * The schema's identity. Two texts that differ only in whitespace, key order, or in how names
   * are qualified (`namespace` attribute versus dotted name) have the same canonical text; texts
   * that differ in anything a reader can observe (defaults, docs, aliases, enum symbol order,
   * logical types, custom attributes) do not. Unlike Avro's Parsing Canonical Form, defaults and
   * attributes are kept, so registering a schema with a new default gets a new id, as in
   * Confluent Schema Registry.
   */
  canonical: string;
}

const PRIMITIVES = new Set(['null', 'boolean', 'int', 'long', 'float', 'double', 'bytes', 'string']);
const NAMED = new Set(['record', 'error', 'enum', 'fixed']);
/** Keys written first, in this order; all other attributes follow in alphabetical order. */
const LEADING_KEYS = ['type', 'name', 'fields', 'symbols', 'items', 'values', 'size'];
const FIELD_LEADING_KEYS = ['name', 'type'];

/**
 * Options for avsc: named types must have names (Avro Java refuses anonymous records), and
 * logical types stay their underlying type, so any logicalType attribute is accepted and kept.
 * A new object per call: avsc keeps its registry of named types in the options it is given.
 */
function avscOptions() {
  return { noAnonymousTypes: true };
}

/**
 * Parses and validates an Avro schema text. Throws SchemaRegistryError 42201 naming the problem
 * when the text is not JSON or not a valid Avro schema (unknown type name, invalid default,
 * duplicate field, anonymous named type, ...). Pure and deterministic.
 */
export function parseAvroSchema(text: string): ParsedAvroSchema {
  const known = PARSED.get(text);
  if (known) return known;
  const parsed = parseUncached(text);
  if (PARSED.size >= PARSED_MAX) PARSED.delete(PARSED.keys().next().value!);
  PARSED.set(text, parsed);
  return parsed;
}

/**
 * Texts parsed lately (oldest first, at most PARSED_MAX): a pgferry task sends each of its
 * schemas several times (registered by the controller, looked up by the capture and the
 * applier, read back from _schemas), and each parse compiles two avsc types (3-10 ms for a
 * table's envelope), on the way to the first rows. The result is never modified.
 */
const PARSED = new Map<string, ParsedAvroSchema>();
const PARSED_MAX = 256;

function parseUncached(text: string): ParsedAvroSchema {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw RegistryErrors.invalidSchema(`not JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  let type: Type;
  try {
    type = Type.forSchema(json as never, avscOptions());
  } catch (err) {
    throw RegistryErrors.invalidSchema(err instanceof Error ? err.message : String(err));
  }
  return { type, canonical: canonicalText(json, type) };
}

function canonicalText(json: unknown, type: Type): string {
  const canonical = JSON.stringify(canonicalize(json, ''));
  // The canonical text must describe the same schema. The one known way it cannot is a type in
  // the null namespace referenced from inside a namespace, which full names cannot express; then
  // the original text, with its keys sorted, is the identity instead.
  try {
    const again = Type.forSchema(JSON.parse(canonical), avscOptions());
    if (again.fingerprint().equals(type.fingerprint())) return canonical;
  } catch {
    // fall through to the sorted original
  }
  return JSON.stringify(sortKeysDeep(json));
}

function canonicalize(node: unknown, namespace: string): unknown {
  if (typeof node === 'string') return PRIMITIVES.has(node) ? node : fullName(node, namespace);
  if (Array.isArray(node)) return node.map((branch) => canonicalize(branch, namespace));
  if (typeof node !== 'object' || node === null) return node;
  const obj = node as Record<string, unknown>;
  const typeName = obj.type;
  const keys = Object.keys(obj).filter((k) => k !== 'namespace');
  if (typeof typeName !== 'string' || (!NAMED.has(typeName) && !['array', 'map'].includes(typeName))) {
    // A primitive or a reference in object form; {"type": "int"} alone is just "int".
    if (keys.length === 1) return canonicalize(typeName, namespace);
    return ordered(obj, keys, LEADING_KEYS, (k, v) => (k === 'type' ? canonicalize(v, namespace) : v));
  }
  if (typeName === 'array' || typeName === 'map') {
    return ordered(obj, keys, LEADING_KEYS, (k, v) =>
      k === 'items' || k === 'values' ? canonicalize(v, namespace) : v,
    );
  }
  const name = fullName(String(obj.name), typeof obj.namespace === 'string' ? obj.namespace : namespace);
  const inner = name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '';
  return ordered(obj, keys, LEADING_KEYS, (k, v) => {
    if (k === 'name') return name;
    if (k === 'aliases' && Array.isArray(v)) return v.map((a) => fullName(String(a), inner));
    if (k === 'fields' && Array.isArray(v)) return v.map((field) => canonicalField(field, inner));
    return v;
  });
}

function canonicalField(field: unknown, namespace: string): unknown {
  if (typeof field !== 'object' || field === null) return field;
  const obj = field as Record<string, unknown>;
  return ordered(obj, Object.keys(obj), FIELD_LEADING_KEYS, (k, v) =>
    k === 'type' ? canonicalize(v, namespace) : v,
  );
}

/** Avro name resolution: a dotted name is already full; otherwise it joins the namespace. */
function fullName(name: string, namespace: string): string {
  if (name.includes('.') || namespace === '') return name;
  return `${namespace}.${name}`;
}

/** The leading keys in their order, then the rest sorted; values other than schemas are key-sorted. */
function ordered(
  obj: Record<string, unknown>,
  keys: string[],
  leading: string[],
  map: (key: string, value: unknown) => unknown,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const rest = keys.filter((k) => !leading.includes(k)).sort();
  for (const k of [...leading.filter((k) => keys.includes(k)), ...rest]) {
    const v = map(k, obj[k]);
    out[k] = v === obj[k] ? sortKeysDeep(v) : v;
  }
  return out;
}

function sortKeysDeep(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeysDeep);
  if (typeof value !== 'object' || value === null) return value;
  const obj = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(obj).sort()) out[k] = sortKeysDeep(obj[k]);
  return out;
}
