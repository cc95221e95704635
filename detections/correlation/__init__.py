"""Sigma correlation rules in event time, without Beam: compiled specs and per-group windows.

plan = compile_correlations(ruleset)          # spec.py: parse checks, aliases, chains
window.add(spec, group, contribution)         # window.py: sliding / closing windows, firings
"""

from kubesigma.detections.correlation.spec import (
    Condition,
    CorrelationError,
    CorrelationPlan,
    CorrelationSpec,
    compile_correlations,
)
from kubesigma.detections.correlation.window import (
    Contribution,
    Correlator,
    Firing,
    GroupWindow,
    correlation_fields,
)

__all__ = [
    "Condition",
    "Contribution",
    "CorrelationError",
    "CorrelationPlan",
    "CorrelationSpec",
    "Correlator",
    "Firing",
    "GroupWindow",
    "compile_correlations",
    "correlation_fields",
]
