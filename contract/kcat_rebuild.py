#!/usr/bin/env python3
"""Rebuilds the tables of a pgferry task from records read by kcat (librdkafka's own client),
decoded with fastavro and the schema registry, folded by change_fold.py.

    python contract/kcat_rebuild.py --brokers HOST:PORT --registry URL --prefix pgferry.TASK

Every Kafka request is kcat's: `kcat -L -J` lists the topics and partitions, and
`kcat -C -t TOPIC -o beginning -e -J` reads each table topic from the start to its end.

Why -J and not -f: kcat prints `%h` header values with printf("%.*s"), which stops at the first
NUL byte, and `pgferry.pos` starts with the high bytes of an LSN, nearly always zero, so `-f`
loses the position. With -J kcat writes each message as one line of JSON whose strings hold
the raw bytes: yajl escapes only '"', '\\' and bytes below 0x20 (as \\u00XX) and copies every
other byte as it is, so reading the line as Latin-1 and encoding each string back to Latin-1
gives the exact key, value and header bytes. Newlines inside the data are escaped, so a line
is a message.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys

from change_fold import RawRecord
from task_topics import rebuild, task_topics
from wire_decode import ContractError, Registry


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode("latin-1")


def kcat(kcat_bin: str, brokers: str, args: list[str], timeout: float) -> bytes:
    cmd = [kcat_bin, "-b", brokers, "-q", *args]
    done = subprocess.run(cmd, capture_output=True, timeout=timeout)
    if done.returncode != 0:
        raise ContractError(
            f"{' '.join(cmd)} exited with {done.returncode}: "
            f"{done.stderr.decode('utf-8', 'replace').strip()[:500]}"
        )
    return done.stdout


def parse_messages(output: bytes) -> list[RawRecord]:
    """kcat -J output (one JSON message per line) -> records with their exact bytes."""
    records = []
    for line in output.split(b"\n"):
        if not line:
            continue
        m = json.loads(line.decode("latin-1"))
        flat = m.get("headers") or []
        headers = [(flat[i], _bytes(flat[i + 1])) for i in range(0, len(flat), 2)]
        records.append(
            RawRecord(
                topic=m["topic"],
                partition=int(m["partition"]),
                offset=int(m["offset"]),
                key=_bytes(m["key"]),
                value=_bytes(m["payload"]),
                headers=headers,
            )
        )
    return records


def read_topics(kcat_bin: str, brokers: str, prefix: str, timeout: float):
    metadata = json.loads(kcat(kcat_bin, brokers, ["-L", "-J"], timeout))
    topics = task_topics([t["topic"] for t in metadata["topics"]], prefix)
    records: list[RawRecord] = []
    for topic in topics:
        out = kcat(kcat_bin, brokers, ["-C", "-t", topic, "-o", "beginning", "-e", "-J"], timeout)
        records.extend(parse_messages(out))
    return topics, records


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", required=True, help="bootstrap servers, host:port[,host:port]")
    parser.add_argument("--registry", required=True, help="schema registry URL")
    parser.add_argument("--prefix", required=True, help="topic prefix (default pgferry.<task>)")
    parser.add_argument("--kcat", default="kcat", help="the kcat binary")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per kcat run")
    parser.add_argument("--digest-only", action="store_true", help="print count and digest, no rows")
    args = parser.parse_args(argv)
    kcat_bin = shutil.which(args.kcat)
    if not kcat_bin:
        print(
            f"kcat_rebuild: {args.kcat} is not on PATH; install kcat (apt-get install kcat)",
            file=sys.stderr,
        )
        return 1
    try:
        topics, records = read_topics(kcat_bin, args.brokers, args.prefix, args.timeout)
        registry = Registry(args.registry)
        out = rebuild(args.prefix, topics, records, registry, with_rows=not args.digest_only)
    except (ContractError, subprocess.TimeoutExpired) as err:
        print(f"kcat_rebuild: {err}", file=sys.stderr)
        return 1
    sys.stdout.reconfigure(encoding="utf-8")
    json.dump(out, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
