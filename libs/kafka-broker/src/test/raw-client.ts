import { connect, type Socket } from 'node:net';
import { Reader, Writer, API_SPECS, readStruct, writeStruct } from '@pgferry/kafka-protocol';

/**
 * A minimal Kafka client over a raw socket, for byte-level tests: sends exact frames and reads
 * the response frames back, or reports that the broker closed the connection.
 */
export class RawClient {
  private buf = Buffer.alloc(0);
  private waiting: Array<(frame: Buffer | null) => void> = [];
  private closed = false;
  private correlation = 1;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 4 && this.buf.length >= 4 + this.buf.readInt32BE(0)) {
        const size = this.buf.readInt32BE(0);
        const frame = this.buf.subarray(4, 4 + size);
        this.buf = this.buf.subarray(4 + size);
        this.waiting.shift()?.(frame);
      }
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.waiting.splice(0)) w(null);
    });
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ host: '127.0.0.1', port }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Sends bytes as they are (the caller builds the whole frame, size prefix included). */
  sendRaw(bytes: Buffer): Promise<Buffer | null> {
    return new Promise((resolve) => {
      if (this.closed) return resolve(null);
      this.waiting.push(resolve);
      this.socket.write(bytes);
    });
  }

  /** A request frame with header v1. */
  static frame(
    apiKey: number,
    version: number,
    correlationId: number,
    body: Buffer,
    clientId = 'raw',
  ): Buffer {
    const w = new Writer();
    w.int32(0).int16(apiKey).int16(version).int32(correlationId).nstring(clientId).raw(body);
    const out = w.finish();
    out.writeInt32BE(out.length - 4, 0);
    return Buffer.from(out);
  }

  /** Encodes `request` with the message spec, sends it and decodes the response. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  async request<T = Record<string, any>>(
    apiKey: number,
    version: number,
    request: Record<string, unknown>,
  ): Promise<T> {
    const spec = API_SPECS.get(apiKey)!;
    const w = new Writer();
    writeStruct(w, spec.request, request, version);
    const id = this.correlation++;
    const frame = await this.sendRaw(RawClient.frame(apiKey, version, id, Buffer.from(w.finish())));
    if (!frame) throw new Error('connection closed by the broker');
    const r = new Reader(frame);
    const cid = r.int32();
    if (cid !== id) throw new Error(`correlation id ${cid}, expected ${id}`);
    return readStruct<T>(r, spec.response, version);
  }

  close(): void {
    this.socket.destroy();
  }
}
