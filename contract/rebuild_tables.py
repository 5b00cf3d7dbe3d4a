#!/usr/bin/env python3
"""Rebuilds the tables of a pgferry task from its Kafka topics with confluent-kafka (librdkafka)
and fastavro, knowing nothing of pgferry but docs/records.md.

    python contract/rebuild_tables.py --brokers HOST:PORT --registry URL --prefix pgferry.TASK

Reads every partition of every `<prefix>.<schema>.<table>` topic and of `<prefix>.transactions`
and `<prefix>.heartbeat` from its start to the end offset it has when the run begins (partitions
assigned explicitly; no consumer group state is used or committed), and prints JSON:
{"tables": [{schema, table, topic, keyed, count, digest, records, rows}], "empty_topics": [...],
"transactions": {...}, "heartbeat": {...}} (see task_topics.py). Exit 1 with the reason on
stderr when a record breaks the contract.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from change_fold import RawRecord
from task_topics import rebuild, task_topics
from wire_decode import ContractError, Registry


def read_topics(brokers: str, prefix: str, timeout: float) -> tuple[list[str], list[RawRecord]]:
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            # Own group id, never committed: the offsets come from the assignment below.
            "group.id": f"pgferry-contract-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        metadata = consumer.list_topics(timeout=timeout)
        topics = task_topics(metadata.topics, prefix)
        assignment, ends = [], {}
        for topic in topics:
            for p in sorted(metadata.topics[topic].partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
                if low > 0:
                    raise ContractError(
                        f"{topic}/{p} starts at offset {low}: earlier records were deleted "
                        "(retention); a rebuild needs the topic's whole history"
                    )
                if high > low:
                    assignment.append(TopicPartition(topic, p, low))
                    ends[(topic, p)] = high
        records: list[RawRecord] = []
        if not assignment:
            return topics, records
        consumer.assign(assignment)
        remaining = dict(ends)
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                left = ", ".join(f"{t}/{p} up to {o}" for (t, p), o in sorted(remaining.items()))
                raise TimeoutError(f"not every record was read within {timeout}s: {left}")
            for msg in consumer.consume(num_messages=1000, timeout=1.0):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                where = (msg.topic(), msg.partition())
                end = remaining.get(where)
                if end is None or msg.offset() >= end:
                    continue
                records.append(
                    RawRecord(
                        topic=msg.topic(),
                        partition=msg.partition(),
                        offset=msg.offset(),
                        key=msg.key(),
                        value=msg.value(),
                        headers=list(msg.headers() or []),
                    )
                )
                if msg.offset() + 1 >= end:
                    del remaining[where]
        return topics, records
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, host:port[,host:port]")
    parser.add_argument("--registry", required=True, help="schema registry URL")
    parser.add_argument("--prefix", required=True, help="topic prefix (default pgferry.<task>)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds for the whole read")
    parser.add_argument("--digest-only", action="store_true", help="print count and digest, no rows")
    parser.add_argument(
        "--logical-types",
        action="store_true",
        help="also decode every record with fastavro's logical types; failures are listed",
    )
    args = parser.parse_args(argv)
    try:
        topics, records = read_topics(args.brokers, args.prefix, args.timeout)
        out = rebuild(
            args.prefix,
            topics,
            records,
            Registry(args.registry),
            with_rows=not args.digest_only,
            logical=args.logical_types,
        )
    except (ContractError, TimeoutError, KafkaException) as err:
        print(f"rebuild_tables: {err}", file=sys.stderr)
        return 1
    sys.stdout.reconfigure(encoding="utf-8")
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
