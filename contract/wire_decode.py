"""Confluent wire format (docs/records.md): magic byte 0, a 4-byte big-endian schema id, then the
Avro binary body, decoded with fastavro against the writer schema the registry holds for the id.
"""

from __future__ import annotations

import io
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import fastavro

from pg_text import strip_logical_types


class ContractError(Exception):
    """A record that does not follow docs/records.md; the message names the record and the rule."""


@dataclass(frozen=True)
class WriterSchema:
    id: int
    # The schema as the registry returned it, logical types and "pg.*" properties included.
    json: Any
    # fastavro's parsed form without logical types (see pg_text.py for why).
    raw: Any
    # fastavro's parsed form as written, for --logical-types (what a default consumer decodes).
    logical: Any


class Registry:
    """Writer schemas by id, from `GET /schemas/ids/{id}`; each id is fetched once."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._by_id: dict[int, WriterSchema] = {}

    def writer(self, schema_id: int) -> WriterSchema:
        cached = self._by_id.get(schema_id)
        if cached:
            return cached
        address = f"{self.url}/schemas/ids/{schema_id}"
        request = urllib.request.Request(
            address, headers={"Accept": "application/vnd.schemaregistry.v1+json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            raise ContractError(
                f"schema id {schema_id}: GET {address} answered {err.code} {err.read()[:200]!r}; "
                "is --registry the registry the task's records were written with?"
            ) from err
        except urllib.error.URLError as err:
            raise ContractError(f"schema registry {self.url} is unreachable: {err.reason}") from err
        text = body.get("schema") if isinstance(body, dict) else None
        if not isinstance(text, str):
            raise ContractError(f"GET {address} returned no schema text: {body!r}"[:300])
        schema = json.loads(text)
        try:
            parsed = WriterSchema(
                id=schema_id,
                json=schema,
                raw=fastavro.parse_schema(strip_logical_types(schema)),
                logical=fastavro.parse_schema(schema),
            )
        except Exception as err:
            raise ContractError(f"fastavro rejects schema id {schema_id}: {err}") from err
        self._by_id[schema_id] = parsed
        return parsed


def decode(
    registry: Registry, data: bytes, where: str, logical: bool = False
) -> tuple[WriterSchema, Any]:
    """A key or value in the Confluent wire format -> (writer schema, decoded Avro datum).

    The whole body must be read by the writer schema: bytes left over mean the id names another
    schema than the one the record was written with.
    """
    if len(data) < 5 or data[0] != 0:
        raise ContractError(
            f"{where}: not in the Confluent wire format (magic byte 0 and a 4-byte schema id); "
            f"starts with {data[:5].hex() or 'nothing'}"
        )
    schema = registry.writer(int.from_bytes(data[1:5], "big"))
    body = io.BytesIO(data[5:])
    try:
        datum = fastavro.schemaless_reader(body, schema.logical if logical else schema.raw, None)
    except Exception as err:
        raise ContractError(
            f"{where}: fastavro cannot decode the body with schema id {schema.id}: "
            f"{type(err).__name__}: {err}"
        ) from err
    left = len(data) - 5 - body.tell()
    if left:
        raise ContractError(f"{where}: {left} bytes left after decoding with schema id {schema.id}")
    return schema, datum


@dataclass(frozen=True)
class Field:
    avro: str
    pg: str
    type: Any


def record_fields(record: Any, where: str) -> list[Field]:
    """The fields of an Avro record schema with their exact PostgreSQL names ("pg.name")."""
    out = []
    for f in record["fields"]:
        pg = f.get("pg.name")
        if not isinstance(pg, str):
            raise ContractError(f"{where}: field {f.get('name')!r} has no \"pg.name\" property")
        out.append(Field(avro=f["name"], pg=pg, type=f["type"]))
    return out


def value_record(envelope: Any, where: str) -> Any:
    """The row record (`<ns>.Value`) of an Envelope schema, from its `before` union."""
    if not isinstance(envelope, dict) or envelope.get("type") != "record":
        raise ContractError(f"{where}: the value schema is not an Envelope record")
    for f in envelope["fields"]:
        if f["name"] == "before":
            for branch in f["type"] if isinstance(f["type"], list) else [f["type"]]:
                if isinstance(branch, dict) and branch.get("type") == "record":
                    return branch
    raise ContractError(f"{where}: the Envelope has no `before` field of a record type")
