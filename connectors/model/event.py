"""The one normalized event type: what every stage after decoding reads.

The rules see `views`: the event's documents as they arrived (raw audit field paths such as
`objectRef.resource`), one per logsource under which the record is evaluated (a GKE LogEntry is both a
Kubernetes audit Event and a gcp.audit record, and is still one event).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any

import orjson

from kubesigma.connectors.model.frozen import fast_init, fast_pickle, load_pickle


@fast_pickle
@fast_init
@dataclass(frozen=True, slots=True)
class LogSource:
    """Sigma logsource of an event: rules apply only to events of their product and service."""

    product: str
    service: str
    category: str | None = None

    def __str__(self) -> str:
        return f"{self.product}/{self.service}"


KUBERNETES_AUDIT = LogSource("kubernetes", "audit")
GCP_AUDIT = LogSource("gcp", "gcp.audit")
AWS_CLOUDTRAIL = LogSource("aws", "cloudtrail")


@fast_pickle
@fast_init
@dataclass(frozen=True, slots=True)
class Source:
    """Where a record was read: a file with line or byte offset, or a message id of a stream."""

    uri: str
    line: int | None = None
    offset: int | None = None  # byte offset in the (decompressed) file
    message_id: str | None = None
    item: int | None = None  # position inside a container (EventList items, envelope logEvents)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"uri": self.uri}
        for name in ("line", "offset", "message_id", "item"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    def at_item(self, index: int) -> Source:
        """The source of the index-th record inside the container read from here."""
        return Source(self.uri, self.line, self.offset, self.message_id, index)

    def __str__(self) -> str:
        where = "".join(
            f"{sep}{value}"
            for sep, value in ((":", self.line), ("@", self.offset), ("#", self.message_id), ("[", self.item))
            if value is not None
        )
        return f"{self.uri}{where}{']' if self.item is not None else ''}"


@fast_pickle
@fast_init
@dataclass(frozen=True, slots=True)
class Cloud:
    """ECS `cloud.*`: where a managed cluster or control-plane event lives."""

    provider: str  # "gcp" | "aws"
    account_id: str | None = None
    region: str | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit record, normalized.

    `views` holds (logsource, document) pairs; the first is the primary view, the one alerts embed
    (under `kubernetes.audit`, or the cloud record's own home). Documents are the event as it came
    (decoded JSON), never rewritten, so rules address the real field paths.
    """

    views: tuple[tuple[LogSource, dict[str, Any]], ...]
    time: float  # event time, seconds since the epoch (UTC)
    event_id: str  # auditID, insertId or eventID: ECS event.id
    identity: str  # unique per delivered record (auditID and stage for audit Events): alert ids hash it
    source: Source
    size: int  # bytes of the record as read; above the soft limit outputs drop bulky objects
    cluster: str | None = None
    cloud: Cloud | None = None
    truncated: bool = False  # recovered from a cut message (CloudWatch's size limit)
    user_name: str | None = None
    source_ip: str | None = None
    user_agent: str | None = None
    # The request the record is about (auditID; a GKE LogEntry's operation id): the records a request's
    # stages produce share it, so it keys "one alert per request"; empty when the record is its own.
    request: str = ""

    @property
    def request_id(self) -> str:
        """The request's id, or the record's own when it names no request."""
        return self.request or self.event_id

    @property
    def logsource(self) -> LogSource:
        return self.views[0][0]

    @property
    def document(self) -> dict[str, Any]:
        return self.views[0][1]

    def view(self, logsource: LogSource) -> tuple[LogSource, dict[str, Any]]:
        """The view a rule of `logsource` reads (a GKE record is seen both ways); the primary one when
        no view has that product and service."""
        for view in self.views:
            seen = view[0]
            if seen.product == logsource.product and seen.service == logsource.service:
                return view
        return self.views[0]

    def to_bytes(self) -> bytes:
        """The event's one serialization (Beam coder, pickling, correlation state): see `event_to_bytes`."""
        return event_to_bytes(self)

    def __reduce__(self) -> tuple[Any, tuple[bytes]]:
        return event_from_bytes, (event_to_bytes(self),)


# An event is written as one JSON array of its fields (its documents are JSON already): orjson writes it
# in a fraction of pickle's time. What JSON cannot hold as it is (a 65-bit integer, a datetime) is
# pickled in the same flat shape.
_JSON = b"J"  # marks a JSON event (a pickle starts with b"\x80")
# Objects orjson would write as strings or objects (and read back as such) go to pickle instead.
# Documents decoded by orjson hold no tuples and no NaN; those from Python's json module (concatenated
# documents on one line) may hold NaN, which comes back null, as every output of kubesigma writes it.
_STRICT = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS


def event_to_bytes(event: AuditEvent) -> bytes:
    """An event as bytes, for `event_from_bytes`."""
    e, s, c = event, event.source, event.cloud
    flat = (
        [(ls.product, ls.service, ls.category, doc) for ls, doc in e.views],
        e.time, e.event_id, e.identity,
        (s.uri, s.line, s.offset, s.message_id, s.item),
        e.size, e.cluster, None if c is None else (c.provider, c.account_id, c.region),
        e.truncated, e.user_name, e.source_ip, e.user_agent, e.request,
    )  # fmt: skip
    try:
        return _JSON + orjson.dumps(flat, option=_STRICT)
    except orjson.JSONEncodeError:
        return pickle.dumps(flat, protocol=pickle.HIGHEST_PROTOCOL)


def event_from_bytes(blob: bytes) -> AuditEvent:
    if blob[:1] == _JSON:
        return _event(*orjson.loads(blob[1:]))
    value = load_pickle(blob)
    if type(value) is tuple:  # the flat fields (also how earlier versions kept events in state)
        return _event(*value)
    event: AuditEvent = value  # a whole event pickled by an earlier version
    return event


def _event(
    views: Any, time: float, event_id: str, identity: str, source: Any, size: int, cluster: Any,
    cloud: Any, *rest: Any,
) -> AuditEvent:  # fmt: skip
    return AuditEvent(
        tuple(
            (LogSource(p, s, c), orjson.loads(doc) if doc.__class__ is bytes else doc)
            for p, s, c, doc in views
        ),
        time,
        event_id,
        identity,
        source if isinstance(source, Source) else Source(*source),
        size,
        cluster,
        cloud if cloud is None or isinstance(cloud, Cloud) else Cloud(*cloud),
        *rest,
    )
