import { CompressionCodecs, CompressionTypes } from 'kafkajs';
import { lz4FrameCompress, lz4FrameDecompress } from '@pgferry/core';

/**
 * Gives kafkajs, which ships no LZ4 codec, pgferry's (lz4-frame.ts), so its consumers read the
 * snapshot's lz4 batches (options.snapshotCompression). Idempotent; every pgferry consumer calls it
 * before it starts.
 */
export function registerKafkajsLz4(): void {
  CompressionCodecs[CompressionTypes.LZ4] = () => ({
    compress: async (encoder: { buffer: Buffer }) => lz4FrameCompress(encoder.buffer),
    decompress: async (buffer: Buffer) => lz4FrameDecompress(buffer),
  });
}
