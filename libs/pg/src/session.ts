/**
 * Session settings of every pipeline connection (snapshot readers, stream readers, appliers).
 * The codec reads and writes text forms in exactly these styles: ISO dates, UTC offsets for
 * timestamptz, hex bytea, floats printed to round-trip.
 */
export const PIPELINE_SESSION_SQL =
  "SET DateStyle = 'ISO, YMD'; SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; SET extra_float_digits = 3; SET bytea_output = 'hex'";
