export * from './errors';
export * from './retry';
export * from './redact';
export * from './log';
export * from './spec';
export * from './crc32c';
export * from './lz4-frame';
