"""The Sigma rule engine: load with pySigma, compile to generated Python, index, match.

    ruleset = RuleSet.load(["detections/rules"])
    for info in ruleset.match(event): ...

Layers: load.py (files → pySigma objects + reports) → mapping (pySigma pipeline) → compile.py
(condition tree → IR → Python source) → ruleset.py (logsource routing, dispatch index, matching).
"""

from kubesigma.detections.config import EngineConfig
from kubesigma.detections.engine.load import RuleLoadError, RuleReport
from kubesigma.detections.engine.modifiers import UnsupportedRule
from kubesigma.detections.engine.ruleset import RuleSet

__all__ = ["EngineConfig", "RuleLoadError", "RuleReport", "RuleSet", "UnsupportedRule"]
