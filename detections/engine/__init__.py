"""The Sigma rule engine: load with pySigma, compile to generated Python, index, match.

    ruleset = RuleSet.load(["detections/rules"])
    for info in ruleset.match(event): ...

Layers: load.py (files → pySigma objects + reports) → mapping (pySigma pipeline) → ir.py (condition
tree → IR; modifiers.py: the leaf tests) → analysis.py (what the IR reads and needs, constant folding)
→ codegen.py (IR → Python source) → runtime.py (what generated code calls, per-event dispatch) →
routing.py (a logsource's dispatch buckets and specialization levels) → ruleset.py (loading, routing
by logsource, matching). interpret.py evaluates the IR directly: the compiled engine's oracle.
"""

from kubesigma.detections.config import EngineConfig
from kubesigma.detections.engine.load import RuleLoadError, RuleReport
from kubesigma.detections.engine.modifiers import UnsupportedRule
from kubesigma.detections.engine.ruleset import RuleSet

__all__ = ["EngineConfig", "RuleLoadError", "RuleReport", "RuleSet", "UnsupportedRule"]
