import { DataError } from '@pgferry/core';

/**
 * PostgreSQL WAL positions. pgferry keeps them as unsigned 64-bit bigints (ordering and
 * arithmetic are exact) and prints them the way the server does, `X/Y` in upper-case hex.
 */
export type Lsn = bigint;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** '16/B374D848' -> 0x16B374D848n. Throws DataError on anything else (it came from outside). */
export function parseLsn(text: string): Lsn {
  const m = LSN_TEXT.exec(text.trim());
  if (!m)
    throw new DataError(
      `not an LSN: ${JSON.stringify(text)} (expected two hex numbers split by "/" as PostgreSQL prints them, e.g. 0/16B3748)`,
    );
  return (BigInt(`0x${m[1]}`) << 32n) | BigInt(`0x${m[2]}`);
}

/** 0x16B374D848n -> '16/B374D848'. */
export function formatLsn(lsn: Lsn): string {
  // Every Lsn pgferry holds was read as an unsigned 64-bit number: only a pgferry bug breaks this.
  if (lsn < 0n || lsn > 0xffffffffffffffffn) throw new RangeError(`LSN out of range: ${lsn}`);
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}
