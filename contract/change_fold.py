"""Folds pgferry's change records (docs/records.md) into the tables they describe.

Input: every record of every partition of the table topics, each with its partition, offset,
key and value bytes and its `pgferry.pos` header, from any Kafka client. Output: per table the
final rows, each a dict of the exact PostgreSQL column name to the column's text form (or None
for NULL), so it compares equal with `SELECT col::text` on the source (see pg_text.py).

Order. Within a partition records are in stream order; across partitions the `pgferry.pos`
header (commit LSN of the change's transaction, then the record's number in it, 12 bytes
big-endian) orders every change of the stream. Snapshot records (`r`) carry no position and
describe the table as of the snapshot, which precedes every streamed change. So a table is
folded as: its snapshot records, then its change records by position. A record whose position
is not after the last one taken from its partition was sent again after a capture restart and
is skipped, as docs/records.md says exactly-once consumers must.

Fold rules:
- keyed tables (records with a key): `r`/`c`/`u` set the row of the record's key; a `u` with a
  `before` whose key differs is a key change, its old row gives the unchanged-TOAST values and
  is removed by the `d` + tombstone that follow on the old key's partition; `d` removes the row;
  a tombstone must follow every keyed `d` in its partition.
- keyless tables: the rows are a multiset; `u` and `d` carry the whole old row in `before`
  (REPLICA IDENTITY FULL) and remove one equal row.
- a column named in `pgferry_unchanged_toast` keeps its previous value; its field must hold
  null or Debezium's placeholder (`__debezium_unavailable_value`, zero), never a value.
- `t` (truncate, no key, one per partition) empties the table.
Anything else raises ContractError naming the record and the rule it breaks.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from pg_text import render
from wire_decode import ContractError, Field, Registry, decode, record_fields, value_record

POSITION_HEADER = "pgferry.pos"
UNAVAILABLE = "__debezium_unavailable_value"
OPS = ("r", "c", "u", "d", "t")


@dataclass
class RawRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)

    @property
    def where(self) -> str:
        return f"{self.topic}/{self.partition}@{self.offset}"

    def position(self) -> bytes | None:
        found = [v for k, v in self.headers if k == POSITION_HEADER]
        if not found:
            return None
        if len(found) > 1 or found[0] is None or len(found[0]) != 12:
            raise ContractError(f"{self.where}: header {POSITION_HEADER} must be one 12-byte value")
        return found[0]


def canonical(row: dict[str, str | None]) -> str:
    return json.dumps(row, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _is_placeholder(value: Any) -> bool:
    return value in (None, UNAVAILABLE, UNAVAILABLE.encode(), 0, b"\x00", [], False)


class TableFold:
    """The state of one topic's table while its records are applied in stream order."""

    def __init__(self, topic: str, registry: Registry, logical: bool) -> None:
        self.topic = topic
        self.registry = registry
        self.logical = logical
        self.schema: str | None = None
        self.table: str | None = None
        self.keyed: bool | None = None
        self.rows: dict[tuple, dict[str, str | None]] = {}
        self.bag: Counter[str] = Counter()
        self.stats: Counter[str] = Counter()
        self.logical_failures: list[str] = []
        # Per partition: the key of a `d` whose tombstone must come next.
        self.tombstone_due: dict[int, bytes] = {}
        # transaction.id -> the change numbers (total_order) seen in this table: one per source
        # change, shared by a key change's `u` and `d` and by a truncate's copies.
        self.tx_changes: dict[str, set[int]] = {}

    def _row(self, fields: list[Field], datum: dict, where: str) -> dict[str, str | None]:
        return {f.pg: render(f.type, datum[f.avro], f"{where} column {f.pg}") for f in fields}

    def _check_logical(self, data: bytes, where: str) -> None:
        """Also decodes with fastavro's own logical types, as a default consumer would."""
        try:
            decode(self.registry, data, where, logical=True)
        except ContractError as err:
            self.stats["logical_type_failures"] += 1
            if len(self.logical_failures) < 20:
                self.logical_failures.append(str(err))

    def _mode(self, keyed: bool, where: str) -> None:
        if self.keyed is None:
            self.keyed = keyed
        elif self.keyed != keyed:
            raise ContractError(
                f"{where}: the topic mixes records with and without keys; a table's key must not "
                "appear or vanish mid-stream for this consumer"
            )

    def apply(self, rec: RawRecord) -> None:
        due = self.tombstone_due.pop(rec.partition, None)
        if rec.value is None:
            self.stats["tombstone"] += 1
            if rec.key is None:
                raise ContractError(f"{rec.where}: a record with neither key nor value")
            if due is not None and due != rec.key:
                raise ContractError(f"{rec.where}: tombstone of another key than the `d` before it")
            if due is None:
                raise ContractError(f"{rec.where}: a tombstone that follows no `d` of its key")
            return
        if due is not None:
            raise ContractError(
                f"{rec.where}: the `d` before it in partition {rec.partition} is not followed by "
                "its tombstone (same key, null value)"
            )
        vschema, env = decode(self.registry, rec.value, f"{rec.where} value")
        if self.logical:
            self._check_logical(rec.value, f"{rec.where} value")
        op = env.get("op")
        if op not in OPS:
            raise ContractError(f"{rec.where}: op {op!r} is none of {'/'.join(OPS)}")
        self.stats[op] += 1
        if env.get("transaction") is not None:
            tx = env["transaction"]
            self.tx_changes.setdefault(tx["id"], set()).add(tx["total_order"])
        source = env["source"]
        self.schema, self.table = source["schema"], source["table"]
        where = f"{rec.where} ({op} of {self.schema}.{self.table})"
        fields = record_fields(value_record(vschema.json, where), where)
        before = self._row(fields, env["before"], where) if env["before"] is not None else None
        after = self._row(fields, env["after"], where) if env["after"] is not None else None
        if op == "t":
            if rec.key is not None or before is not None or after is not None:
                raise ContractError(f"{where}: a truncate has no key and no row images")
            self.rows.clear()
            self.bag.clear()
            return
        key = None
        key_names: list[str] = []
        if rec.key is not None:
            kschema, kdatum = decode(self.registry, rec.key, f"{rec.where} key")
            if self.logical:
                self._check_logical(rec.key, f"{rec.where} key")
            kfields = record_fields(kschema.json, f"{rec.where} key")
            key_names = [f.pg for f in kfields]
            key = tuple(render(f.type, kdatum[f.avro], f"{where} key {f.pg}") for f in kfields)
        self._mode(key is not None, where)
        if op in ("r", "c") and (after is None or before is not None):
            raise ContractError(f"{where}: `{op}` carries `after` only")
        if op == "u" and after is None:
            raise ContractError(f"{where}: `u` carries `after`")
        if op == "d" and (before is None or after is not None):
            raise ContractError(f"{where}: `d` carries `before` only")
        unchanged = list(env.get("pgferry_unchanged_toast") or [])
        if unchanged:
            self.stats["unchanged_toast"] += 1
            if op != "u":
                raise ContractError(f"{where}: pgferry_unchanged_toast is set on a `{op}`")
            by_pg = {f.pg: f for f in fields}
            for name in unchanged:
                if name not in by_pg:
                    raise ContractError(f"{where}: unchanged TOAST column {name!r} is not a column")
                if not _is_placeholder(env["after"][by_pg[name].avro]):
                    raise ContractError(
                        f"{where}: unchanged TOAST column {name!r} holds a value, not null or "
                        f"{UNAVAILABLE}"
                    )
        if key is not None:
            self._apply_keyed(op, key, key_names, before, after, unchanged, rec, where)
        else:
            self._apply_keyless(op, before, after, unchanged, where)

    def _apply_keyed(self, op, key, key_names, before, after, unchanged, rec, where) -> None:
        if op == "d":
            if key not in self.rows:
                raise ContractError(f"{where}: `d` of key {key}, which no earlier record holds")
            del self.rows[key]
            self.tombstone_due[rec.partition] = rec.key
            return
        if op == "c" and key in self.rows:
            raise ContractError(f"{where}: `c` of key {key}, which an earlier record holds")
        old_key = key
        if op == "u" and before is not None:
            old_key = tuple(before[n] for n in key_names)
            if old_key != key:
                self.stats["key_change"] += 1
        previous = self.rows.get(old_key)
        if op == "u" and previous is None:
            raise ContractError(f"{where}: `u` of key {old_key}, which no earlier record holds")
        row = dict(after)
        for name in unchanged:
            row[name] = previous[name]
        self.rows[key] = row

    def _apply_keyless(self, op, before, after, unchanged, where) -> None:
        if op in ("u", "d"):
            if before is None:
                raise ContractError(
                    f"{where}: a keyless table's `{op}` needs the old row in `before` "
                    "(REPLICA IDENTITY FULL)"
                )
            old = canonical(before)
            if self.bag[old] == 0:
                raise ContractError(f"{where}: `{op}` of a row no earlier record holds: {old[:300]}")
            self.bag[old] -= 1
            if self.bag[old] == 0:
                del self.bag[old]
        if op == "d":
            return
        row = dict(after)
        for name in unchanged:
            row[name] = before[name]
        self.bag[canonical(row)] += 1

    def result(self, with_rows: bool) -> dict[str, Any]:
        if self.tombstone_due:
            p = next(iter(self.tombstone_due))
            raise ContractError(f"{self.topic}/{p}: the last `d` of the partition has no tombstone")
        lines = sorted(
            [canonical(r) for r in self.rows.values()] if self.keyed else list(self.bag.elements())
        )
        out: dict[str, Any] = {
            "schema": self.schema,
            "table": self.table,
            "topic": self.topic,
            "keyed": bool(self.keyed),
            "count": len(lines),
            "digest": hashlib.sha256("\n".join(lines).encode()).hexdigest(),
            "records": dict(sorted(self.stats.items())),
        }
        if self.logical_failures:
            out["logical_type_failures"] = self.logical_failures
        if with_rows:
            out["rows"] = [json.loads(line) for line in lines]
        return out


def stream_order(records: Iterable[RawRecord]) -> list[RawRecord]:
    """One topic's records in stream order (module docstring), re-sent records left out."""
    snapshot: list[RawRecord] = []
    changes: list[tuple[bytes, RawRecord]] = []
    last: dict[int, bytes] = {}
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        pos = rec.position()
        if pos is None:
            if rec.partition in last:
                raise ContractError(
                    f"{rec.where}: a record without {POSITION_HEADER} after streamed changes in its "
                    "partition (only snapshot records may lack it, and they come first)"
                )
            snapshot.append(rec)
            continue
        if rec.partition in last and pos <= last[rec.partition]:
            continue
        last[rec.partition] = pos
        changes.append((pos, rec))
    changes.sort(key=lambda c: c[0])
    return snapshot + [rec for _, rec in changes]
