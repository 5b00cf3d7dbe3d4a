/**
 * Big-endian readers and writers for the Kafka wire primitives (non-flexible encodings; the
 * zig-zag varints inside record batches are in varint.ts). A read past the end throws
 * ProtocolError, which the
 * server turns into a closed connection, as Kafka does for a request it cannot parse.
 */
export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export class Reader {
  pos: number;
  constructor(
    readonly buf: Buffer,
    pos = 0,
    readonly end = buf.length,
  ) {
    this.pos = pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end)
      throw new ProtocolError(`truncated: needed ${n} bytes at ${this.pos}, have ${this.end - this.pos}`);
  }
  remaining(): number {
    return this.end - this.pos;
  }
  int8(): number {
    this.need(1);
    return this.buf.readInt8(this.pos++);
  }
  int16(): number {
    this.need(2);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    this.need(4);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(): number {
    this.need(4);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  int64(): bigint {
    this.need(8);
    const v = this.buf.readBigInt64BE(this.pos);
    this.pos += 8;
    return v;
  }
  float64(): number {
    this.need(8);
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }
  bool(): boolean {
    return this.int8() !== 0;
  }
  nstring(): string | null {
    const len = this.int16();
    if (len < 0) return null;
    this.need(len);
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
  string(): string {
    const s = this.nstring();
    if (s === null) throw new ProtocolError('null where a string is required');
    return s;
  }
  nbytes(): Buffer | null {
    const len = this.int32();
    if (len < 0) return null;
    this.need(len);
    const b = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return b;
  }
  bytes(): Buffer {
    return this.nbytes() ?? Buffer.alloc(0);
  }
  uuid(): Buffer {
    this.need(16);
    const b = this.buf.subarray(this.pos, this.pos + 16);
    this.pos += 16;
    return b;
  }
}

/**
 * A growable buffer writer. `finish()` returns the written bytes (a view, not a copy).
 *
 * With `spliceFrom`, `raw` (and so `nbytes`, `bytes`, `varbytes`) takes a buffer of at least that
 * many bytes by reference instead of copying it: `finishParts()` then gives the output as a list
 * of buffers to write out in order (a fetch response's record batches are sent as read from the
 * log, without being copied into the response). The caller must not change such a buffer until
 * the parts were written.
 */
export class Writer {
  buf: Buffer;
  pos = 0;
  /** Output before buf[start, pos): written bytes and spliced buffers, in order. */
  private parts: Buffer[] = [];
  private start = 0;
  constructor(
    initial = 256,
    private readonly spliceFrom = Infinity,
  ) {
    this.buf = Buffer.allocUnsafe(initial);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const used = this.pos - this.start;
    let size = Math.max(this.buf.length, 256) * 2;
    while (size < used + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, this.start, this.pos);
    this.buf = next;
    this.start = 0;
    this.pos = used;
  }
  int8(v: number): this {
    this.ensure(1);
    this.buf.writeInt8(v, this.pos++);
    return this;
  }
  int16(v: number): this {
    this.ensure(2);
    this.buf.writeInt16BE(v, this.pos);
    this.pos += 2;
    return this;
  }
  int32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32BE(v, this.pos);
    this.pos += 4;
    return this;
  }
  uint32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }
  int64(v: bigint | number): this {
    this.ensure(8);
    this.buf.writeBigInt64BE(BigInt(v), this.pos);
    this.pos += 8;
    return this;
  }
  float64(v: number): this {
    this.ensure(8);
    this.buf.writeDoubleBE(v, this.pos);
    this.pos += 8;
    return this;
  }
  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }
  nstring(v: string | null | undefined): this {
    if (v === null || v === undefined) return this.int16(-1);
    const len = Buffer.byteLength(v);
    this.int16(len);
    this.ensure(len);
    this.buf.write(v, this.pos, 'utf8');
    this.pos += len;
    return this;
  }
  string(v: string | null | undefined): this {
    return this.nstring(v ?? '');
  }
  raw(b: Buffer): this {
    if (b.length >= this.spliceFrom) {
      if (this.pos > this.start) this.parts.push(this.buf.subarray(this.start, this.pos));
      this.parts.push(b);
      this.start = this.pos;
      return this;
    }
    this.ensure(b.length);
    b.copy(this.buf, this.pos);
    this.pos += b.length;
    return this;
  }
  /**
   * Int32-length bytes; -1 is null. A list of buffers is written as one field, their bytes in
   * order (a record batch whose header and records live in different buffers).
   */
  nbytes(v: Buffer | readonly Buffer[] | null | undefined): this {
    if (v === null || v === undefined) return this.int32(-1);
    if (Buffer.isBuffer(v)) {
      this.int32(v.length);
      return this.raw(v);
    }
    this.int32(v.reduce((n, b) => n + b.length, 0));
    for (const b of v) this.raw(b);
    return this;
  }
  bytes(v: Buffer | null | undefined): this {
    return this.nbytes(v ?? Buffer.alloc(0));
  }
  uuid(v: Buffer | null | undefined): this {
    return this.raw(v && v.length === 16 ? v : Buffer.alloc(16));
  }
  /** The written bytes as one buffer (a copy only when something was spliced). */
  finish(): Buffer {
    if (!this.parts.length) return this.buf.subarray(this.start, this.pos);
    return Buffer.concat(this.finishParts());
  }
  /** The written bytes as buffers to be written out in order; no copy. */
  finishParts(): Buffer[] {
    const tail = this.buf.subarray(this.start, this.pos);
    return this.parts.length ? (tail.length ? [...this.parts, tail] : [...this.parts]) : [tail];
  }
  /** Bytes written so far. */
  get length(): number {
    let n = this.pos - this.start;
    for (const p of this.parts) n += p.length;
    return n;
  }
}
