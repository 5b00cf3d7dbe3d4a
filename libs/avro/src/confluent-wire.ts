import { DataError } from '@pgferry/core';

/**
 * The Confluent wire format of every key and value pgferry writes and reads: magic byte 0, the
 * 4-byte big-endian schema id of the registry, then the Avro binary body. The one place that
 * knows its layout.
 */
export const WIRE_MAGIC = 0;
export const WIRE_HEADER_BYTES = 5;

/** Writes the header for schema `id` at buf[pos]; returns the position of the body. */
export function writeWireHeader(buf: Buffer, pos: number, id: number): number {
  buf[pos] = WIRE_MAGIC;
  buf.writeInt32BE(id, pos + 1);
  return pos + WIRE_HEADER_BYTES;
}

/** `body` as a wire-format message for schema `id`. */
export function wire(id: number, body: Buffer): Buffer {
  const out = Buffer.allocUnsafe(WIRE_HEADER_BYTES + body.length);
  writeWireHeader(out, 0, id);
  body.copy(out, WIRE_HEADER_BYTES);
  return out;
}

/** The schema id of the wire-format message buf[start, end), or -1 when it is not one. */
export function wireSchemaId(buf: Buffer, start = 0, end = buf.length): number {
  if (end - start < WIRE_HEADER_BYTES || buf[start] !== WIRE_MAGIC) return -1;
  return buf.readInt32BE(start + 1);
}

/** wireSchemaId, or a DataError naming what the bytes are instead. */
export function requireWireSchemaId(buf: Buffer, start = 0, end = buf.length): number {
  const id = wireSchemaId(buf, start, end);
  if (id < 0)
    throw new DataError(
      `not a Confluent wire-format Avro value (magic byte ${buf[start]}, length ${end - start})`,
    );
  return id;
}
