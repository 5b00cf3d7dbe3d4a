import { ProtocolError, Reader, Writer } from './buffer-io';
import { API_SPECS } from './messages';
import { readStruct, writeStruct } from './schema-codec';

/**
 * Kafka's frames (non-flexible versions): an int32 size, then for a request header v1
 * (api_key INT16, api_version INT16, correlation_id INT32, client_id NULLABLE_STRING) and the
 * body; for a response header v0 (correlation_id INT32) and the body. Both sides of the wire
 * frame their messages here.
 */

/** Buffers of this size and more (record batches) go into a frame by reference, not copied. */
export const SPLICE_BYTES = 4096;

function specOf(apiKey: number, version: number) {
  const spec = API_SPECS.get(apiKey);
  if (!spec) throw new ProtocolError(`unknown API key ${apiKey}`);
  if (version < spec.min || version > spec.max)
    throw new ProtocolError(
      `${spec.name} version ${version} is not in the codec (${spec.min} to ${spec.max})`,
    );
  return spec;
}

/** The name of API `apiKey` (for messages). */
export function apiName(apiKey: number): string {
  return API_SPECS.get(apiKey)?.name ?? `API ${apiKey}`;
}

/**
 * A request frame as buffers to write out in order (record batches of SPLICE_BYTES and more are
 * the caller's buffers, not copies: keep them unchanged until the frame was written).
 */
export function encodeRequestFrame(
  apiKey: number,
  version: number,
  correlationId: number,
  clientId: string | null,
  body: object,
): Buffer[] {
  const spec = specOf(apiKey, version);
  const w = new Writer(256, SPLICE_BYTES);
  w.int32(0);
  w.int16(apiKey);
  w.int16(version);
  w.int32(correlationId);
  w.nstring(clientId);
  writeStruct(w, spec.request, body as Record<string, unknown>, version);
  const parts = w.finishParts();
  parts[0].writeInt32BE(w.length - 4, 0);
  return parts;
}

/** A response frame as buffers to write out in order (see encodeRequestFrame). */
export function encodeResponseFrame(correlationId: number, body: (w: Writer) => void): Buffer[] {
  const w = new Writer(1024, SPLICE_BYTES);
  w.int32(0);
  w.int32(correlationId);
  body(w);
  const parts = w.finishParts();
  parts[0].writeInt32BE(w.length - 4, 0);
  return parts;
}

/** The correlation id of a response frame's payload (the bytes after its size). */
export function responseCorrelationId(payload: Buffer): number {
  if (payload.length < 4) throw new ProtocolError(`response of ${payload.length} bytes has no header`);
  return payload.readInt32BE(0);
}

/**
 * The body of a response to `apiKey` at `version`, from the frame's payload (after the size):
 * bytes fields are views of `payload`, not copies. Throws ProtocolError when it is truncated or
 * longer than the layout says (the two sides disagree on the version).
 */
export function decodeResponseBody<T>(apiKey: number, version: number, payload: Buffer): T {
  const spec = specOf(apiKey, version);
  const r = new Reader(payload, 4);
  const body = readStruct<T>(r, spec.response, version);
  if (r.remaining() !== 0)
    throw new ProtocolError(
      `${spec.name} v${version} response has ${r.remaining()} bytes more than its layout`,
    );
  return body;
}
