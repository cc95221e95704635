"""A worker settles its heap once: what it loaded stays out of garbage collection, nothing later does."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import gc
from kubesigma.pipeline.transforms import settle_heap
assert gc.get_freeze_count() == 0
settle_heap()
first = gc.get_freeze_count()
later = [[i] for i in range(10_000)]  # objects made after: a second call must not freeze them
settle_heap()
print(first, gc.get_freeze_count(), gc.get_threshold()[0])
"""


def test_the_heap_is_frozen_once_and_later_objects_stay_collectable() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    first, second, young = map(int, out.stdout.split())
    assert first > 10_000  # the modules and what they hold
    assert second == first
    assert young >= 10_000  # a batch of records stays in the youngest generation while it is alive
