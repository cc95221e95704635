"""Alert suppression in event time: the first alert out, repeats folded into one follow-up."""

from __future__ import annotations

import random
from pathlib import Path

from support.audit_records import T0, audit_event, to_event
from support.beam_runs import Collected, run_batch, run_stream, script
from support.correlation_pack import load


def execs(start: float, count: int, step: float, *, pod: str = "web-0", first_n: int = 0):
    return [
        to_event(
            audit_event(
                first_n + i, at=start + i * step, verb="create", resource="pods", name=pod, subresource="exec"
            )
        )
        for i in range(count)
    ]


def test_repeats_within_the_window_fold_into_one_follow_up(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path)  # Pod Exec alerts alone: no correlation here
    events = execs(T0, 6, 30)  # six execs into the same pod by the same user within 3 minutes
    out = Collected(tmp_path / "out.json")
    run_stream(
        script(("watermark", T0), ("add", events), ("watermark", T0 + 900)), ruleset, plan, out, suppress=600
    )
    folded = sorted(x[2] or 0 for x in out.items)
    assert folded == [0, 5]  # the first alert as is, then one follow-up folding five repeats


def test_a_repeat_after_the_window_opens_a_new_run(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path)  # Pod Exec alerts alone: no correlation here
    events = execs(T0, 2, 700)
    out = Collected(tmp_path / "out.json")
    run_stream(
        script(("watermark", T0), ("add", events), ("watermark", T0 + 2000)), ruleset, plan, out, suppress=600
    )
    assert [x[2] for x in out.items] == [None, None]


def test_other_objects_are_not_folded_together(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path)  # Pod Exec alerts alone: no correlation here
    events = execs(T0, 1, 1) + execs(T0 + 5, 1, 1, pod="db-0", first_n=10)
    out = Collected(tmp_path / "out.json")
    run_stream(
        script(("watermark", T0), ("add", events), ("watermark", T0 + 900)), ruleset, plan, out, suppress=600
    )
    assert len(out.items) == 2
    assert all(x[2] is None for x in out.items)


def test_folding_does_not_depend_on_arrival_order(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path)  # Pod Exec alerts alone: no correlation here
    events = execs(T0, 8, 20)
    shuffled = events[:]
    random.Random(11).shuffle(shuffled)
    a, b = Collected(tmp_path / "a.json"), Collected(tmp_path / "b.json")
    run_stream(
        script(("watermark", T0), ("add", events), ("watermark", T0 + 900)), ruleset, plan, a, suppress=600
    )
    run_stream(
        script(("watermark", T0), ("add", shuffled), ("watermark", T0 + 900)), ruleset, plan, b, suppress=600
    )
    assert a.items == b.items


def test_batch_with_suppression_matches_streaming(tmp_path: Path) -> None:
    ruleset, plan = load(tmp_path)  # Pod Exec alerts alone: no correlation here
    events = execs(T0, 8, 100)
    batch, stream = Collected(tmp_path / "batch.json"), Collected(tmp_path / "stream.json")
    run_batch(events, ruleset, plan, batch, suppress=600)
    run_stream(
        script(("watermark", T0), ("add", events), ("watermark", T0 + 2000)),
        ruleset,
        plan,
        stream,
        suppress=600,
    )
    assert batch.items == stream.items
    assert sorted(x[2] or 0 for x in batch.items) == [0, 0, 1, 5]
