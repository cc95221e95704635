"""Elasticsearch sink: ECS alerts (and, optionally, every normalized event) into date-named indices,
exactly once, with the official `elasticsearch` client (8.x, matching the server's major).

Exactly once: a document's `_id` is its alert id (a pure function of rule and event), its index a pure
function of its `@timestamp`, and it is written with the bulk `create` op. A retry or a replay of the same
alert therefore either creates it or gets 409 (already written, counted as success); it never creates a
second copy. Rejections (429), server errors (5xx), timeouts and broken connections are retried with
exponential backoff, per item; what Elasticsearch refuses for good (a mapping error) goes to the
`dead_letter` output with Elasticsearch's own reason.

Settings and credentials: es_config.py; templates and retention: es_indices.py.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import orjson
from apache_beam.utils.windowed_value import WindowedValue

from kubesigma.connectors.model import AuditEvent, DeadLetter, Source
from kubesigma.connectors.model.alert import EVENT_SOFT_LIMIT, event_document
from kubesigma.connectors.sinks import document_inputs, es_mapping
from kubesigma.connectors.sinks.es_config import (
    DEAD_LETTER,
    RETRYABLE_STATUS,
    ElasticsearchConfig,
    ElasticsearchConfigError,
    error_reason,
    make_client,
)

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ documents


def alert_doc_id(doc: dict[str, Any]) -> str:
    return doc["kubesigma"]["alert_id"]


def event_doc_id(doc: dict[str, Any]) -> str:
    return doc["kubesigma"]["event_id"]


@dataclass(slots=True)
class BulkItem:
    """One document on its way: where it goes, and the two NDJSON lines of its `create` op."""

    index: str
    doc_id: str
    action: bytes
    source: bytes
    payload: Any = None  # carried through to the caller (e.g. the Beam windowed value)

    @property
    def size(self) -> int:
        return len(self.action) + len(self.source) + 2


def bulk_item(doc: dict[str, Any], prefix: str, kind: str, payload: Any = None) -> BulkItem:
    """Raises KeyError/ValueError when the document has no id or a bad @timestamp."""
    doc_id = alert_doc_id(doc) if kind == "alerts" else event_doc_id(doc)
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"document id {doc_id!r} is not a non-empty string")
    index = es_mapping.index_name(prefix, kind, doc["@timestamp"])
    action = orjson.dumps({"create": {"_index": index, "_id": doc_id}})
    return BulkItem(index, doc_id, action, orjson.dumps(doc), payload)


@dataclass
class BulkOutcome:
    created: list[BulkItem] = field(default_factory=list)
    existed: list[BulkItem] = field(default_factory=list)  # 409: written by an earlier try or run
    failed: list[tuple[BulkItem, str]] = field(default_factory=list)  # permanent, with ES's reason
    attempts: int = 0
    retried_items: int = 0


def _item_reason(result: dict[str, Any]) -> str:
    error = result.get("error")
    if isinstance(error, dict):
        reason = f"{error.get('type')}: {error.get('reason')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            reason += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return f"{result.get('status')} {reason}"
    return f"{result.get('status')} {error}"


class BulkWriter:
    """Writes batches with bulk `create`, retrying what may succeed later, until each item is created,
    found already written (409), refused for good, or out of attempts."""

    def __init__(
        self,
        client: Any,
        config: ElasticsearchConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self._sleep = sleep
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"BulkWriter({self.config.target})"

    def _backoff(self, attempt: int) -> float:
        # full jitter: spreads the retries of many workers hitting one overloaded cluster
        ceiling = min(self.config.backoff_max, self.config.backoff_initial * (2**attempt))
        return self._rng.uniform(ceiling / 2, ceiling)

    def write(self, items: Sequence[BulkItem]) -> BulkOutcome:
        from elastic_transport import SerializationError
        from elasticsearch import ApiError, TransportError

        outcome = BulkOutcome()
        pending = list(items)
        last_reason = ""
        for attempt in range(self.config.max_attempts):
            if not pending:
                break
            if attempt:
                outcome.retried_items += len(pending)
                self._sleep(self._backoff(attempt - 1))
            outcome.attempts += 1
            lines: list[bytes] = []
            for item in pending:
                lines.append(item.action)
                lines.append(item.source)
            try:
                response = self.client.bulk(
                    operations=lines,
                    filter_path="errors,items.*.status,items.*.error",
                )
            except ApiError as err:
                status = err.meta.status
                last_reason = f"{status} {error_reason(err)}"
                if status in RETRYABLE_STATUS:
                    log.warning("elasticsearch bulk of %d: %s; retrying", len(pending), last_reason)
                    continue
                if status == 413 and len(pending) > 1:
                    # over http.max_content_length: halve the request until each part fits
                    half = len(pending) // 2
                    log.warning("elasticsearch bulk of %d too large (413); splitting", len(pending))
                    for part in (pending[:half], pending[half:]):
                        sub = self.write(part)
                        outcome.created += sub.created
                        outcome.existed += sub.existed
                        outcome.failed += sub.failed
                        outcome.attempts += sub.attempts
                        outcome.retried_items += sub.retried_items
                    return outcome
                for item in pending:
                    outcome.failed.append((item, last_reason))
                return outcome
            except (TransportError, SerializationError) as err:
                # connection refused/reset, timeout, TLS, a cut response: the bulk may or may not have
                # been applied; `create` makes resending safe either way
                last_reason = f"{type(err).__name__}: {err}"
                log.warning("elasticsearch bulk of %d: %s; retrying", len(pending), last_reason)
                continue
            body = response.body if hasattr(response, "body") else response
            results = body.get("items") if isinstance(body, dict) else None
            if not body.get("errors") and isinstance(results, list) and len(results) == len(pending):
                outcome.created.extend(pending)
                pending = []
                break
            if not isinstance(results, list) or len(results) != len(pending):
                last_reason = (
                    f"bulk response without one result per item ({len(results or [])}/{len(pending)})"
                )
                log.warning("elasticsearch: %s; retrying", last_reason)
                continue
            retry: list[BulkItem] = []
            for item, entry in zip(pending, results, strict=True):
                result = next(iter(entry.values()))
                status = result.get("status", 0)
                if 200 <= status < 300:
                    outcome.created.append(item)
                elif status == 409:
                    outcome.existed.append(item)
                elif status in RETRYABLE_STATUS:
                    last_reason = _item_reason(result)
                    retry.append(item)
                else:
                    outcome.failed.append((item, _item_reason(result)))
            if retry:
                log.warning(
                    "elasticsearch: %d of %d items to retry (%s)", len(retry), len(pending), last_reason
                )
            pending = retry
        for item in pending:
            outcome.failed.append((item, f"gave up after {outcome.attempts} attempts: {last_reason}"))
        return outcome


# ------------------------------------------------------------------ Beam


class _WriteBundles(beam.DoFn):
    """Buffers a bundle's documents and writes them in bulk batches; emits the ids written (created or
    already there) and, on `dead_letter`, what Elasticsearch refused for good."""

    def __init__(self, config: ElasticsearchConfig, kind: str) -> None:
        self.config = config
        self.kind = kind
        self._client: Any = None
        self._writer: BulkWriter | None = None
        self._buffer: list[BulkItem] = []
        self._buffered_bytes = 0

    def __repr__(self) -> str:
        return f"_WriteBundles({self.kind} → {self.config.target})"

    def setup(self) -> None:
        from apache_beam.metrics import Metrics

        self._client = make_client(self.config)
        self._writer = BulkWriter(self._client, self.config)
        namespace = "kubesigma.elasticsearch"
        self._created = Metrics.counter(namespace, f"{self.kind}_created")
        self._existed = Metrics.counter(namespace, f"{self.kind}_already_written")
        self._failed = Metrics.counter(namespace, f"{self.kind}_dead_lettered")
        self._retried = Metrics.counter(namespace, f"{self.kind}_retried_items")

    def teardown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def start_bundle(self) -> None:
        self._buffer = []
        self._buffered_bytes = 0

    def process(
        self,
        doc: dict[str, Any],
        timestamp: Any = beam.DoFn.TimestampParam,
        window: Any = beam.DoFn.WindowParam,
    ) -> Iterator[Any]:
        try:
            item = bulk_item(doc, self.config.index_prefix, self.kind, payload=(timestamp, window))
        except (KeyError, TypeError, ValueError) as err:
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                DeadLetter(
                    stage="sink",
                    reason=f"not an indexable {self.kind} document: {err}",
                    source=Source(uri=f"elasticsearch:{self.config.index_prefix}-{self.kind}"),
                    raw=orjson.dumps(doc, default=str),
                ),
            )
            return
        self._buffer.append(item)
        self._buffered_bytes += item.size
        if len(self._buffer) >= self.config.batch_size or self._buffered_bytes >= self.config.batch_bytes:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        # Batched documents may come from other windows than the current element: each output keeps
        # the timestamp and window of its own input.
        for tag, value, (timestamp, window) in self._flush_with_payload():
            wv = WindowedValue(value, timestamp, (window,))
            yield beam.pvalue.TaggedOutput(tag, wv) if tag else wv

    def _flush_with_payload(self) -> Iterator[tuple[str | None, Any, Any]]:
        if not self._buffer:
            return
        items, self._buffer, self._buffered_bytes = self._buffer, [], 0
        assert self._writer is not None
        outcome = self._writer.write(items)
        self._created.inc(len(outcome.created))
        self._existed.inc(len(outcome.existed))
        self._failed.inc(len(outcome.failed))
        self._retried.inc(outcome.retried_items)
        for item in outcome.created + outcome.existed:
            yield None, item.doc_id, item.payload
        for item, reason in outcome.failed:
            yield (
                DEAD_LETTER,
                DeadLetter(
                    stage="sink",
                    reason=reason,
                    source=Source(uri=f"elasticsearch:{item.index}", message_id=item.doc_id),
                    raw=item.source,
                ),
                item.payload,
            )


class WriteToElasticsearch(beam.PTransform):
    """`docs | WriteToElasticsearch(config, kind="alerts")`: JSON dicts (alerts from
    `Alert.to_json_dict()`, or events from `event_document`) into date-named indices, exactly once;
    `docs` may be a tuple of PCollections (each written by a step of its own).

    Returns a tuple-like result: `.written` (ids created or found already written) and `.dead_letter`
    (`DeadLetter`s of documents Elasticsearch refused for good, with its reason)."""

    def __init__(self, config: ElasticsearchConfig, kind: str = "alerts") -> None:
        super().__init__()
        if kind not in es_mapping.KINDS:
            raise ElasticsearchConfigError(f"kind {kind!r}: expected one of {', '.join(es_mapping.KINDS)}")
        self.config = config
        self.kind = kind

    def expand(self, docs: Any) -> Any:
        writes = [
            side
            | f"Bulk{self.kind.title()}{n or ''}"
            >> beam.ParDo(_WriteBundles(self.config, self.kind)).with_outputs(DEAD_LETTER, main="written")
            for n, side in enumerate(document_inputs(docs))
        ]
        if len(writes) == 1:
            return writes[0]
        # Ids written and refusals are few beside the documents: gathering them costs little.
        return _Written(
            written=[w.written for w in writes] | "Written" >> beam.Flatten(),
            dead_letter=[w.dead_letter for w in writes] | "Refused" >> beam.Flatten(),
        )


@dataclass(frozen=True)
class _Written:
    """What WriteToElasticsearch gives for documents from several steps, as for one."""

    written: beam.PCollection
    dead_letter: beam.PCollection


class IndexEvents(beam.PTransform):
    """`events | IndexEvents(config)`: normalized `AuditEvent`s (single, or the batches DecodeAudit
    emits) into `<prefix>-events-YYYY.MM.DD` for hunting. Same outputs as WriteToElasticsearch."""

    def __init__(self, config: ElasticsearchConfig, soft_limit: int = EVENT_SOFT_LIMIT) -> None:
        super().__init__()
        self.config = config
        self.soft_limit = soft_limit

    def expand(self, events: beam.PCollection) -> Any:
        soft_limit = self.soft_limit

        def documents(element: AuditEvent | list[AuditEvent]) -> Iterator[dict[str, Any]]:
            for event in element if isinstance(element, list | tuple) else (element,):
                yield event_document(event, soft_limit)

        return (
            events | "EventDocuments" >> beam.FlatMap(documents) | WriteToElasticsearch(self.config, "events")
        )
