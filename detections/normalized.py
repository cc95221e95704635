"""Fields kubesigma normalizes across record formats, for rules to say things once.

* `event.outcome` (ECS): `success` or `failure` of the request. A record shows a failure when the API
  server refused or failed it (native and EKS: `responseStatus.code` >= 400 or the authorizer's
  `forbid`; GKE, whose entries the decoder turns into Events: the same, from `protoPayload.status`,
  a failure Status in `protoPayload.response` or `authorizationInfo[].granted`; GCP: a non-zero
  `protoPayload.status.code` or a refused permission; CloudTrail: an `errorCode`). `success` is the
  rest, except a record written before the API server decided (stage `RequestReceived`): a record
  without a response status still counts, so a rule does not go blind on logs that leave it out.
  A rule about something done (created, changed, bound, granted, read, executed) fires only on
  success: every rule that does not name `event.outcome` itself fires on success only (raw status or
  decision fields in a rule narrow it further, they do not choose the outcome). The engine checks that
  once per event (`RuleInfo.success_only`, the logsource profile's `succeeded`); sigma-cli's pipeline
  adds `event.outcome: success` to such rules, so converted queries say the same. Rules
  about attempts say `event.outcome: failure`; rules about both say `event.outcome: [success, failure]`.
  A dry run (`dryRun=All` in the request URI) changed nothing: it is no success either.
* `exec.command` (Kubernetes): the command of an exec or attach, as the user typed it. kube-apiserver
  keeps it only in the request URI (`?command=tar&command=cf&command=-`, URL-encoded, arguments
  apart); GKE in the entry's label `command.gke.io/command` (arguments joined by spaces). A value is
  matched in both: in the URI in every spelling clients send (a space between arguments or inside
  one, `+` or `%20`, characters escaped or not). `startswith` means an argument starts with it.

The Python side of the outcome (ECS `event.outcome` of alerts) is each logsource profile's `outcome`
(connectors/model/logsources.py); a test holds the two to the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Any
from urllib.parse import quote, quote_plus

from sigma.conditions import ConditionAND, ConditionOR, SigmaCondition
from sigma.correlations import SigmaCorrelationRule
from sigma.exceptions import SigmaTransformationError
from sigma.processing.transformations.base import ConditionTransformation, DetectionItemTransformation
from sigma.rule import SigmaDetection, SigmaDetectionItem, SigmaRule
from sigma.types import SigmaString, SigmaType, SpecialChars

OUTCOME_FIELD = "event.outcome"
EXEC_COMMAND_FIELD = "exec.command"
GKE_COMMAND = "annotations.command.gke.io/command"


@dataclass(frozen=True)
class Outcome:
    """How a logsource's records show the outcome, as Sigma detection items (field with modifiers,
    value): any `failure` item shows a refusal; an `undecided` item a record written before the
    decision."""

    failure: tuple[tuple[str, Any], ...]
    undecided: tuple[tuple[str, Any], ...] = ()

    def fields(self) -> frozenset[str]:
        return frozenset(key.split("|", 1)[0] for key, _ in (*self.failure, *self.undecided))


OUTCOMES: dict[tuple[str, str], Outcome] = {
    ("kubernetes", "audit"): Outcome(
        failure=(
            ("responseStatus.code|gte", 400),
            ("annotations.authorization.k8s.io/decision", "forbid"),
        ),
        # Written before the API server decided, or a dry run (nothing was changed).
        undecided=(("stage", "RequestReceived"), ("requestURI|contains", "dryRun=")),
    ),
    ("gcp", "gcp.audit"): Outcome(
        failure=(
            ("protoPayload.status.code|gte", 1),
            ("protoPayload.authorizationInfo.granted", False),
            ("protoPayload.response.status", "Failure"),
        ),
    ),
    ("aws", "cloudtrail"): Outcome(failure=(("errorCode|exists", True),)),
}
OUTCOME_VALUES = ("success", "failure")


def _outcome_of(rule: SigmaRule) -> Outcome | None:
    ls = rule.logsource
    return OUTCOMES.get(((ls.product or "").lower(), (ls.service or "").lower()))


def _item(key: str, value: Any, negated: bool = False) -> SigmaDetectionItem:
    item = SigmaDetectionItem.from_mapping(key, value)
    item.negated = negated
    return item


def success_detection(outcome: Outcome) -> SigmaDetection:
    """No refusal and a decision made: every failure and undecided item negated, all of them."""
    items: list[SigmaDetectionItem | SigmaDetection] = [
        _item(key, value, negated=True) for key, value in (*outcome.failure, *outcome.undecided)
    ]
    return SigmaDetection(items, item_linking=ConditionAND)


def failure_detection(outcome: Outcome) -> SigmaDetection:
    items: list[SigmaDetectionItem | SigmaDetection] = [_item(key, value) for key, value in outcome.failure]
    return SigmaDetection(items, item_linking=ConditionOR)


def _fields_named(detection: SigmaDetection) -> set[str]:
    out: set[str] = set()
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            out |= _fields_named(item)
        elif item.field is not None:
            out.add(item.field)
    return out


@dataclass
class OutcomeFieldTransformation(DetectionItemTransformation):
    """`event.outcome: success|failure` into the logsource's own fields."""

    def apply_detection_item(self, detection_item: SigmaDetectionItem) -> SigmaDetection | None:
        if detection_item.field != OUTCOME_FIELD:
            return None
        rule = self._rule
        outcome = _outcome_of(rule) if isinstance(rule, SigmaRule) else None
        if outcome is None:
            ls = rule.logsource if isinstance(rule, SigmaRule) else None
            raise SigmaTransformationError(
                f"{OUTCOME_FIELD} is not known for logsource {ls.product if ls else '-'}/{ls.service if ls else '-'}"
            )
        words = []
        for value in detection_item.value:
            word = (
                str(value).lower()
                if isinstance(value, SigmaString) and not value.contains_special()
                else None
            )
            if word not in OUTCOME_VALUES:
                raise SigmaTransformationError(
                    f"{OUTCOME_FIELD} takes {' or '.join(OUTCOME_VALUES)}, not {value!s}"
                )
            words.append(word)
        if detection_item.negated or detection_item.modifiers:
            raise SigmaTransformationError(f"{OUTCOME_FIELD} takes plain values, without modifiers")
        parts: list[SigmaDetectionItem | SigmaDetection] = [
            success_detection(outcome) if word == "success" else failure_detection(outcome)
            for word in dict.fromkeys(words)
        ]
        return parts[0] if len(parts) == 1 else SigmaDetection(parts, item_linking=ConditionOR)  # type: ignore[return-value]

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        self._rule = rule
        super().apply(rule)


# Underscored: `1 of them` and `all of them` leave such detections out (Sigma specification).
GATE = "_kubesigma_outcome_success"


def fires_on_success_only(rule: SigmaRule | SigmaCorrelationRule) -> bool:
    """A rule about something done: its logsource knows the outcome, and the rule says nothing of it:
    it names no `event.outcome` and selects no failure in the logsource's own fields (a rule written
    for raw records, such as one on `responseStatus.code: 403`, is about refusals already)."""
    if not isinstance(rule, SigmaRule):
        return False
    outcome = _outcome_of(rule)
    if outcome is None:
        return False
    named: set[str] = set()
    for detection in rule.detection.detections.values():
        named |= _fields_named(detection)
    if OUTCOME_FIELD in named:
        return False
    return not any(_selects_failure(detection, outcome) for detection in rule.detection.detections.values())


def _selects_failure(detection: SigmaDetection, outcome: Outcome) -> bool:
    """Whether an item asks a failure field for a value that shows a refusal (`responseStatus.code:
    403`, `decision: forbid`); `responseStatus.code: 201` asks for a success and does not count."""
    for item in detection.detection_items:
        if isinstance(item, SigmaDetection):
            if _selects_failure(item, outcome):
                return True
            continue
        for key, shown in outcome.failure:
            field, _, modifier = key.partition("|")
            if item.field != field:
                continue
            for value in item.value:
                plain = _plain(value)
                if _shows(plain, shown, modifier):
                    return True
    return False


def _plain(value: Any) -> Any:
    for attribute in ("number", "boolean", "exists"):
        if hasattr(value, attribute):
            return getattr(value, attribute)
    return str(value)


def _shows(value: Any, shown: Any, modifier: str) -> bool:
    if modifier == "exists":
        return value is True or str(value).lower() == "true"
    if modifier == "gte":
        try:
            return float(value) >= float(shown)
        except (TypeError, ValueError):
            return False
    return str(value).lower() == str(shown).lower()


@dataclass
class OutcomeGateTransformation(ConditionTransformation):
    """For sigma-cli's pipeline (queries on indexed records): `event.outcome: success` added to every
    rule that fires on success only. The engine checks the same once per event instead
    (`RuleInfo.success_only`, the logsource profile's `succeeded`): one test per event, not per rule."""

    def apply(self, rule: SigmaRule | SigmaCorrelationRule) -> None:
        self._gate = fires_on_success_only(rule)
        if self._gate and isinstance(rule, SigmaRule):
            outcome = _outcome_of(rule)
            assert outcome is not None
            rule.detection.detections[GATE] = success_detection(outcome)
        super().apply(rule)

    def apply_condition(self, cond: SigmaCondition) -> None:
        if self._gate:
            cond.condition = f"{GATE} and ({cond.condition})"


# -- exec.command --------------------------------------------------------------------------------

# Variants of one value in the request URI; past this a rule is refused rather than slowed down.
MAX_URI_SPELLINGS = 64


def _spellings(text: str) -> set[str]:
    """How a piece of a command may appear in an exec request URI: each space between two arguments
    (`&command=`) or inside one (`+`, `%20`); characters escaped as Go's `url.QueryEscape` and
    Python's `quote_plus` do, as `quote` does, or not at all."""
    words = text.split(" ")
    styles = (
        lambda w: quote_plus(w, safe=""),
        lambda w: quote(w, safe="/:"),
        lambda w: w,
    )
    out: set[str] = set()
    for separators in product(("+", "%20", "&command="), repeat=len(words) - 1):
        for encode in styles:
            spelled = encode(words[0])
            for sep, word in zip(separators, words[1:], strict=True):
                spelled += sep + encode(word)
            out.add(spelled)
    return out


def _uri_values(value: SigmaString) -> list[SigmaType]:
    """The value's spellings in a request URI, as `contains` patterns (wildcards kept in place)."""
    parts: list[Any] = list(value.s)
    anchored_start = bool(parts) and parts[0] is not SpecialChars.WILDCARD_MULTI
    choices: list[list[Any]] = []
    for part in parts:
        if isinstance(part, str):
            choices.append(sorted(_spellings(part)))
        else:
            choices.append([part])
    out: list[SigmaType] = []
    for combo in product(*choices):
        spelled = list(combo)
        # An argument that starts with the value: `command=` right before it.
        head: list[Any] = ["command="] if anchored_start else []
        s = SigmaString()
        s.s = [SpecialChars.WILDCARD_MULTI, *head, *spelled, SpecialChars.WILDCARD_MULTI]
        s.s = _merged(s.s)
        out.append(s)
        if len(out) > MAX_URI_SPELLINGS:
            raise SigmaTransformationError(
                f"{EXEC_COMMAND_FIELD} value {value!s} has over {MAX_URI_SPELLINGS} spellings in a request"
                " URI: split it into shorter values"
            )
    return out


def _merged(parts: list[Any]) -> list[Any]:
    out: list[Any] = []
    for part in parts:
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        elif part is SpecialChars.WILDCARD_MULTI and out and out[-1] is SpecialChars.WILDCARD_MULTI:
            continue
        elif part != "":
            out.append(part)
    return out


@dataclass
class ExecCommandTransformation(DetectionItemTransformation):
    """`exec.command` into the request URI's spellings and GKE's command label (module docstring)."""

    def apply_detection_item(self, detection_item: SigmaDetectionItem) -> SigmaDetection | None:
        if detection_item.field != EXEC_COMMAND_FIELD:
            return None
        if detection_item.negated:
            raise SigmaTransformationError(f"{EXEC_COMMAND_FIELD} cannot be negated with |neq")
        uri: list[SigmaType] = []
        label: list[SigmaType] = []
        for value in detection_item.value:
            if not isinstance(value, SigmaString) or value.contains_placeholder():
                raise SigmaTransformationError(
                    f"{EXEC_COMMAND_FIELD} takes strings with wildcards (use requestURI for other"
                    f" matches), not {type(value).__name__}"
                )
            uri.extend(_uri_values(value))
            label.append(value)
        linking = detection_item.value_linking
        if linking is ConditionAND and len(detection_item.value) > 1:
            # `|all`: every value in the URI, or every value in the label.
            return SigmaDetection(
                [
                    SigmaDetection(
                        [
                            SigmaDetection(
                                [SigmaDetectionItem("requestURI", [], _uri_values(v))],
                                item_linking=ConditionOR,
                            )
                            for v in detection_item.value
                            if isinstance(v, SigmaString)
                        ],
                        item_linking=ConditionAND,
                    ),
                    SigmaDetectionItem(GKE_COMMAND, [], label, value_linking=ConditionAND),
                ],
                item_linking=ConditionOR,
            )
        return SigmaDetection(
            [SigmaDetectionItem("requestURI", [], uri), SigmaDetectionItem(GKE_COMMAND, [], label)],
            item_linking=ConditionOR,
        )
