"""A task's topics (docs/records.md): the table topics `<prefix>.<schema>.<table>`, folded into
tables by change_fold.py, and `<prefix>.transactions` and `<prefix>.heartbeat`, checked by
stream_topics.py. What both consumer scripts print.
"""

from __future__ import annotations

from typing import Any, Iterable

from change_fold import RawRecord, TableFold, stream_order
from stream_topics import check_heartbeat, check_transactions
from wire_decode import Registry


def task_topics(names: Iterable[str], prefix: str) -> list[str]:
    """The topics of the task among `names`: table topics (Kafka turns '.' in names into '_', so
    the rest after the prefix has exactly one dot), transactions and heartbeat; not the DLQ."""
    stream = {f"{prefix}.transactions", f"{prefix}.heartbeat"}
    return sorted(
        n
        for n in names
        if n in stream
        or (n.startswith(prefix + ".") and n[len(prefix) + 1 :].count(".") == 1)
    )


def rebuild(
    prefix: str,
    topics: Iterable[str],
    records: Iterable[RawRecord],
    registry: Registry,
    with_rows: bool = True,
    logical: bool = False,
) -> dict[str, Any]:
    """Every table topic's table, folded, and the stream topics checked. Table topics without
    records (no schema or table to name them by) are listed as `empty_topics`."""
    by_topic: dict[str, list[RawRecord]] = {t: [] for t in topics}
    for rec in records:
        by_topic[rec.topic].append(rec)
    tx_topic, hb_topic = f"{prefix}.transactions", f"{prefix}.heartbeat"
    tables, empty = [], []
    changes: dict[str, dict[str, set[int]]] = {}
    for topic in sorted(set(by_topic) - {tx_topic, hb_topic}):
        if not by_topic[topic]:
            empty.append(topic)
            continue
        ordered = stream_order(by_topic[topic])
        fold = TableFold(topic, registry, logical)
        for rec in ordered:
            fold.apply(rec)
        fold.stats["resent_skipped"] = len(by_topic[topic]) - len(ordered)
        tables.append(fold.result(with_rows))
        if fold.tx_changes:
            changes[f"{fold.schema}.{fold.table}"] = fold.tx_changes
    return {
        "tables": sorted(tables, key=lambda t: (t["schema"] or "", t["table"] or "", t["topic"])),
        "empty_topics": empty,
        "transactions": check_transactions(by_topic.get(tx_topic, []), registry, changes),
        "heartbeat": check_heartbeat(by_topic.get(hb_topic, []), registry, prefix),
    }
