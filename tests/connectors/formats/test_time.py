"""Event time parsing: every spelling the audit sources use gives the same epoch seconds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesigma.connectors.formats._time import _parse_general, parse_rfc3339


@given(
    st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from(["", ".%f", ".%f000", ".3"]),
)
def test_c_parser_path_agrees_with_the_general_parser(when: datetime, fraction: str) -> None:
    text = when.strftime(f"%Y-%m-%dT%H:%M:%S{fraction}Z")
    assert parse_rfc3339(text) == pytest.approx(_parse_general(text), abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "2026-02-31T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28Tab:00:00Z",
        "yesterday",
        "",
    ],
)
def test_invalid_timestamps_give_none(text: str) -> None:
    assert parse_rfc3339(text) is None


def test_offsets_and_nanoseconds_are_understood() -> None:
    base = datetime(2026, 11, 28, 10, tzinfo=UTC).timestamp()
    assert parse_rfc3339("2026-11-28T12:00:00+02:00") == base
    assert parse_rfc3339("2026-11-28T10:00:00.123456789Z") == pytest.approx(base + 0.123456)
    assert parse_rfc3339("2026-11-28T10:00:00Z") == base
    assert (
        parse_rfc3339("2026-11-28T10:00:01Z")
        == (datetime.fromtimestamp(base, UTC) + timedelta(seconds=1)).timestamp()
    )
