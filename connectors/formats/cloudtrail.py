"""AWS CloudTrail records (logsource aws/cloudtrail), as a single record, the `Records` array of the
files CloudTrail writes to S3 (each record is one), or an EventBridge "AWS API Call via CloudTrail"
envelope. EKS control-plane calls (eks.amazonaws.com) name their cluster; every record is kept so
CloudTrail rules on the services around the cluster (IAM, ECS, EC2) can match too."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from kubesigma.connectors.formats import DecodeContext, Format, Outcome, register
from kubesigma.connectors.formats._time import parse_rfc3339
from kubesigma.connectors.model import AWS_CLOUDTRAIL, AuditEvent, Cloud, DeadLetter, Source

EVENTBRIDGE_DETAIL_TYPE = "AWS API Call via CloudTrail"


def is_cloudtrail_record(value: Any) -> bool:
    return (
        type(value) is dict
        and "eventVersion" in value
        and isinstance(value.get("eventSource"), str)
        and isinstance(value.get("eventName"), str)
    )


def is_cloudtrail_file(value: Any) -> bool:
    if type(value) is not dict or not isinstance(value.get("Records"), list):
        return False
    records = value["Records"]
    return not records or is_cloudtrail_record(records[0])


def is_eventbridge_envelope(value: Any) -> bool:
    return type(value) is dict and value.get("detail-type") == EVENTBRIDGE_DETAIL_TYPE and "detail" in value


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _eks_cluster(record: dict[str, Any]) -> str | None:
    # The EKS API names the cluster `name` in its paths (/clusters/{name}/...); responses echo it.
    response = record.get("responseElements")
    if isinstance(response, dict):
        for key in (
            "cluster",
            "nodegroup",
            "fargateProfile",
            "addon",
            "accessEntry",
            "podIdentityAssociation",
        ):
            inner = response.get(key)
            if isinstance(inner, dict):
                name = _text(inner.get("clusterName")) or (
                    _text(inner.get("name")) if key == "cluster" else None
                )
                if name:
                    return name
    request = record.get("requestParameters")
    if isinstance(request, dict):
        return _text(request.get("clusterName")) or _text(request.get("name"))
    return None


def _user_name(identity: Any) -> str | None:
    if not isinstance(identity, dict):
        return None
    return _text(identity.get("arn")) or _text(identity.get("userName")) or _text(identity.get("principalId"))


def cloudtrail_event(
    record: dict[str, Any], source: Source, size: int, raw: bytes, ctx: DecodeContext
) -> AuditEvent | DeadLetter:
    """Normalize one CloudTrail record."""
    event_id = _text(record.get("eventID"))
    if event_id is None:
        return DeadLetter("decode", "CloudTrail record without eventID", source, raw)
    when = parse_rfc3339(record.get("eventTime"))
    if when is None:
        return DeadLetter("decode", f"CloudTrail record {event_id} has no valid eventTime", source, raw)
    identity = record.get("userIdentity")
    account = _text(record.get("recipientAccountId"))
    if account is None and isinstance(identity, dict):
        account = _text(identity.get("accountId"))
    cluster = _eks_cluster(record) if record.get("eventSource") == "eks.amazonaws.com" else None
    source_ip = _text(record.get("sourceIPAddress"))
    return AuditEvent(
        views=((AWS_CLOUDTRAIL, record),),
        time=when,
        event_id=event_id,
        identity=event_id,
        source=source,
        size=size,
        cluster=cluster or ctx.cluster,
        cloud=Cloud("aws", account, _text(record.get("awsRegion"))),
        user_name=_user_name(identity),
        source_ip=source_ip,
        user_agent=_text(record.get("userAgent")),
        request=event_id,
    )


def _decode_record(
    value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext
) -> Iterator[Outcome]:
    yield cloudtrail_event(value, source, size, raw, ctx)


def _decode_file(value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext) -> Iterator[Outcome]:
    for index, record in enumerate(value["Records"]):
        item_source = source.at_item(index)
        item_raw = orjson.dumps(record)
        if is_cloudtrail_record(record):
            yield cloudtrail_event(record, item_source, len(item_raw), item_raw, ctx)
        else:
            yield DeadLetter(
                "decode",
                "item of a CloudTrail Records file is not a CloudTrail record",
                item_source,
                item_raw,
            )


def _decode_eventbridge(
    value: Any, source: Source, size: int, raw: bytes, ctx: DecodeContext
) -> Iterator[Outcome]:
    detail = value["detail"]
    if not is_cloudtrail_record(detail):
        yield DeadLetter(
            "decode",
            f"EventBridge {EVENTBRIDGE_DETAIL_TYPE!r} envelope whose detail is not a CloudTrail record",
            source,
            raw,
        )
        return
    yield cloudtrail_event(detail, source, size, raw, ctx)


register(Format("cloudtrail-record", is_cloudtrail_record, _decode_record, priority=60))
register(Format("cloudtrail-s3-file", is_cloudtrail_file, _decode_file, priority=30))
register(Format("cloudtrail-eventbridge", is_eventbridge_envelope, _decode_eventbridge, priority=30))
