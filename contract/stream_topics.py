"""The transaction and heartbeat topics of docs/records.md, decoded and checked against the
change records of the table topics.

- `<prefix>.transactions`: BEGIN and END records (Debezium's TransactionMetadataValue) keyed by
  the transaction id; BEGIN precedes END for each id, and END's per-table event counts equal the
  number of source changes the table topics carry for that id (distinct `transaction.total_order`
  values: a key change's `u` and `d`, and a truncate's copies on every partition, are one change).
  Every transaction id of a change record has its END.
- `<prefix>.heartbeat`: keyed by the topic prefix (ServerNameKey), beats in commit order.
"""

from __future__ import annotations

from typing import Any

from change_fold import RawRecord, stream_order
from wire_decode import ContractError, Registry, decode


def check_transactions(
    records: list[RawRecord], registry: Registry, changes: dict[str, dict[str, set[int]]]
) -> dict[str, Any]:
    """`changes`: "schema.table" -> transaction id -> the change numbers seen in its topic."""
    begun: set[str] = set()
    ended: dict[str, dict[str, int]] = {}
    for rec in stream_order(records):
        if rec.key is None or rec.value is None:
            raise ContractError(f"{rec.where}: transaction records have a key and a value")
        _, key = decode(registry, rec.key, f"{rec.where} key")
        _, value = decode(registry, rec.value, f"{rec.where} value")
        tx = value["id"]
        if key["id"] != tx:
            raise ContractError(f"{rec.where}: key id {key['id']!r} is not the value's id {tx!r}")
        if value["status"] == "BEGIN":
            if tx in begun:
                raise ContractError(f"{rec.where}: a second BEGIN of transaction {tx}")
            begun.add(tx)
        elif value["status"] == "END":
            if tx not in begun or tx in ended:
                raise ContractError(f"{rec.where}: END of transaction {tx} without its BEGIN")
            counts = {c["data_collection"]: c["event_count"] for c in value["data_collections"] or []}
            if sum(counts.values()) != value["event_count"]:
                raise ContractError(
                    f"{rec.where}: END of {tx} counts {value['event_count']} events, its tables "
                    f"{sum(counts.values())}"
                )
            ended[tx] = counts
        else:
            raise ContractError(f"{rec.where}: status {value['status']!r} is neither BEGIN nor END")
    seen: dict[str, dict[str, int]] = {}
    for table, by_tx in changes.items():
        for tx, orders in by_tx.items():
            seen.setdefault(tx, {})[table] = len(orders)
    wrong = [
        f"{tx}: END says {ended.get(tx)}, the table topics hold {counts}"
        for tx, counts in sorted(seen.items())
        if ended.get(tx) != counts
    ]
    return {
        "begin": len(begun),
        "end": len(ended),
        "open": sorted(begun - set(ended)),
        "count_mismatches": wrong[:20],
    }


def check_heartbeat(records: list[RawRecord], registry: Registry, prefix: str) -> dict[str, Any]:
    names: set[str] = set()
    last = None
    for rec in sorted(records, key=lambda r: (r.partition, r.offset)):
        if rec.key is None or rec.value is None:
            raise ContractError(f"{rec.where}: heartbeat records have a key and a value")
        _, key = decode(registry, rec.key, f"{rec.where} key")
        _, value = decode(registry, rec.value, f"{rec.where} value")
        names.add(key["serverName"])
        if last is not None and value["ts_ms"] < last:
            raise ContractError(f"{rec.where}: beat at {value['ts_ms']} after one at {last}")
        last = value["ts_ms"]
    if names - {prefix}:
        raise ContractError(f"{prefix}.heartbeat: server names {sorted(names)}, not {prefix!r}")
    return {"beats": len(records), "last_ts_ms": last}
