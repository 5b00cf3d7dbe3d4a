import { DataError } from '@pgferry/core';

/**
 * Exact conversions between PostgreSQL's ISO text for date and timestamp (DateStyle ISO) and
 * day / microsecond counts since 1970-01-01, over PostgreSQL's whole range (4713 BC to
 * 5874897 AD), using the proleptic Gregorian calendar (Hinnant's days_from_civil). 'infinity'
 * and '-infinity' map to the extreme values PostgreSQL itself uses internally.
 */
export const DATE_POS_INFINITY = 2147483647;
export const DATE_NEG_INFINITY = -2147483648;
export const TS_POS_INFINITY = 9223372036854775807n;
export const TS_NEG_INFINITY = -9223372036854775808n;

/** Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's days_from_civil). */
export function daysFromCivil(y: number, m: number, d: number): number {
  y -= m <= 2 ? 1 : 0;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (m + (m > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146097 + doe - 719468;
}

function civilFromDays(z: number): [number, number, number] {
  z += 719468;
  const era = Math.floor(z / 146097);
  const doe = z - era * 146097;
  const yoe = Math.floor(
    (doe - Math.floor(doe / 1460) + Math.floor(doe / 36524) - Math.floor(doe / 146096)) / 365,
  );
  const doy = doe - (365 * yoe + Math.floor(yoe / 4) - Math.floor(yoe / 100));
  const mp = Math.floor((5 * doy + 2) / 153);
  const d = doy - Math.floor((153 * mp + 2) / 5) + 1;
  const m = mp + (mp < 10 ? 3 : -9);
  return [yoe + era * 400 + (m <= 2 ? 1 : 0), m, d];
}

const DATE_RE = /^(\d{4,})-(\d{2})-(\d{2})( BC)?$/;
const TS_RE = /^(\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?( BC)?$/;

function astronomicalYear(text: string, bc: boolean): number {
  const y = Number(text);
  return bc ? 1 - y : y;
}

function displayYear(y: number): { year: string; bc: string } {
  return y <= 0
    ? { year: String(1 - y).padStart(4, '0'), bc: ' BC' }
    : { year: String(y).padStart(4, '0'), bc: '' };
}

/** A value that is not the ISO form: its reader (the encoder of a table) names the column. */
function notIso(type: 'date' | 'timestamp', text: string): DataError {
  return new DataError(
    `not an ISO ${type}: ${JSON.stringify(text)} (pgferry reads the form PostgreSQL prints with DateStyle ISO, which its sessions set)`,
  );
}

const pad2 = (n: number) => String(n).padStart(2, '0');

export function dateToDays(text: string): number {
  if (text === 'infinity') return DATE_POS_INFINITY;
  if (text === '-infinity') return DATE_NEG_INFINITY;
  const m = DATE_RE.exec(text);
  if (!m) throw notIso('date', text);
  return daysFromCivil(astronomicalYear(m[1], Boolean(m[4])), Number(m[2]), Number(m[3]));
}

export function daysToDate(days: number): string {
  if (days === DATE_POS_INFINITY) return 'infinity';
  if (days === DATE_NEG_INFINITY) return '-infinity';
  const [y, mo, d] = civilFromDays(days);
  const { year, bc } = displayYear(y);
  return `${year}-${pad2(mo)}-${pad2(d)}${bc}`;
}

export function timestampToMicros(text: string): bigint {
  if (text === 'infinity') return TS_POS_INFINITY;
  if (text === '-infinity') return TS_NEG_INFINITY;
  const m = TS_RE.exec(text);
  if (!m) throw notIso('timestamp', text);
  const days = daysFromCivil(astronomicalYear(m[1], Boolean(m[8])), Number(m[2]), Number(m[3]));
  const secs = Number(m[4]) * 3600 + Number(m[5]) * 60 + Number(m[6]);
  const micros = m[7] ? Number(m[7].padEnd(6, '0')) : 0;
  return BigInt(days) * 86400000000n + BigInt(secs) * 1000000n + BigInt(micros);
}

export function microsToTimestamp(micros: bigint): string {
  if (micros === TS_POS_INFINITY) return 'infinity';
  if (micros === TS_NEG_INFINITY) return '-infinity';
  let days = micros / 86400000000n;
  let rem = micros % 86400000000n;
  if (rem < 0n) {
    rem += 86400000000n;
    days -= 1n;
  }
  const [y, mo, d] = civilFromDays(Number(days));
  const secs = Number(rem / 1000000n);
  const frac = Number(rem % 1000000n);
  const { year, bc } = displayYear(y);
  const fraction = frac ? `.${String(frac).padStart(6, '0').replace(/0+$/, '')}` : '';
  return `${year}-${pad2(mo)}-${pad2(d)} ${pad2(Math.floor(secs / 3600))}:${pad2(Math.floor(secs / 60) % 60)}:${pad2(secs % 60)}${fraction}${bc}`;
}
