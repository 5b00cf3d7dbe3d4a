import type { ColumnInfo } from '@pgferry/pg';

/** A column as describeColumns gives it, for specs: nullable, not in the key, unless `extra` says. */
export function column(name: string, baseType: string, extra: Partial<ColumnInfo> = {}): ColumnInfo {
  return {
    name,
    type: baseType,
    baseType,
    precision: null,
    scale: null,
    notNull: false,
    keyPosition: 0,
    ...extra,
  };
}
