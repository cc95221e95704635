"""The Dataflow Flex Template of `kubesigma run --streaming`: its metadata.json, derived from the options
`kubesigma run` accepts, and the launcher's entry point (terraform/dataflow/main.py calls `launch`).

    python -m kubesigma.pipeline.commands.flex_template            # rewrite terraform/dataflow/metadata.json
    python -m kubesigma.pipeline.commands.flex_template --check    # exit 1 if it is out of date

Every option `kubesigma run --help` lists becomes a typed template parameter, except the batch and
`--tail` inputs (see `excluded`): an option added to the job without regenerating the file fails the check.
Parameter names are the options' Python names (`alerts_out`): the launcher passes them as
`--alerts_out=VALUE`, and `launcher_argv` turns them back into the options kubesigma declares.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubesigma.pipeline.options import FlinkCheckpointOptions, OptionError

REPO = Path(__file__).resolve().parents[2]
METADATA = REPO / "terraform" / "dataflow" / "metadata.json"
MODULE = "kubesigma.pipeline.commands.flex_template"

DURATION = r"^[0-9]+(\.[0-9]+)?(ms|s|m|h|d)?$"
SIZE = r"^[0-9]+(\.[0-9]+)?([kKmMgG]([iI][bB])?)?$"
SECRET = r"^(projects/[^/]+/secrets/[^/]+(/versions/[^/]+)?|arn:aws[a-z-]*:secretsmanager:.+)$"

# What Dataflow's console and its launch-time validation should know beyond argparse's own types.
PARAM_TYPES = {
    "pubsub_subscription": "PUBSUB_SUBSCRIPTION",
    "alerts_out": "GCS_WRITE_FOLDER",
    "dead_letter": "GCS_WRITE_FOLDER",
}
PATTERNS = {
    "pubsub_subscription": r"^projects/[^/]+/subscriptions/[^/]+$",
    "suppress_window": DURATION,
    "allowed_lateness": DURATION,
    "max_record_bytes": SIZE,
    "soft_record_bytes": SIZE,
    "es_url": r"^https?://[^/]+",
    "es_api_key_secret": SECRET,
    "es_password_secret": SECRET,
}
# A streaming job cannot start without these (`kubesigma run` refuses to); its source is one of Pub/Sub,
# Kafka and Kinesis, which `kubesigma run` checks at launch.
REQUIRED = frozenset({"alerts_out", "dead_letter"})


def _flink_only() -> frozenset[str]:
    """Beam's Flink runner options `kubesigma run` declares: not parameters of a Dataflow template."""
    parser = argparse.ArgumentParser(add_help=False)
    FlinkCheckpointOptions._add_argparse_args(parser)
    return frozenset(action.dest for action in parser._actions)


FLINK_ONLY = _flink_only()
GROUPS = (
    ("es_", "Elasticsearch"),
    ("pubsub_", "Source"),
    ("kafka_", "Source"),
    ("kinesis_", "Source"),
    ("alerts_out", "Outputs"),
    ("dead_letter", "Outputs"),
)
WORDS = {
    "es": "Elasticsearch",
    "pubsub": "Pub/Sub",
    "tls": "TLS",
    "sasl": "SASL",
    "url": "URL",
    "api": "API",
    "ca": "CA",
    "id": "ID",
}


def excluded(dest: str) -> str | None:
    """Why an option of `kubesigma run` is not a parameter of the streaming template, or None."""
    if dest == "inputs":
        return "batch input (--input): the template reads Pub/Sub"
    if dest == "tail" or dest.startswith("tail_"):
        return "--tail input: follows a local directory, not something a Dataflow job reads"
    if dest in ("since", "until"):
        return "batch time range (--since/--until): a streaming job reads what arrives"
    if dest == "workers":
        return "batch worker processes (--workers): a streaming job's parallelism is its runner's"
    if dest in FLINK_ONLY:
        return "Flink runner option: Dataflow checkpoints and updates jobs itself"
    if dest == "metrics_out":
        return "written when a job ends (batch, --tail-max-idle); a template launch returns at submission"
    return None


@dataclass(frozen=True)
class TemplateParameter:
    """One option of `kubesigma run` as a Flex Template parameter."""

    name: str
    flag: str
    label: str
    help_text: str
    param_type: str
    optional: bool
    group: str
    regexes: tuple[str, ...] = ()
    default: str | None = None
    repeated: bool = False

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "helpText": self.help_text,
            "isOptional": self.optional,
            "paramType": self.param_type,
            "groupName": self.group,
        }
        if self.regexes:
            out["regexes"] = list(self.regexes)
        if self.default is not None:
            out["defaultValue"] = self.default
        return out


def _label(dest: str) -> str:
    words = [WORDS.get(word, word) for word in dest.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _parameter(action: argparse.Action) -> TemplateParameter:
    dest = action.dest
    flag = next(s for s in action.option_strings if s.startswith("--"))
    repeated = isinstance(action, argparse._AppendAction)
    regexes: tuple[str, ...]
    if isinstance(action, argparse._StoreTrueAction):
        kind, regexes, default = "BOOLEAN", (), "false"
    elif action.type is int:
        kind, regexes, default = "NUMBER", (r"^[0-9]+$",), None
    else:
        kind = PARAM_TYPES.get(dest, "TEXT")
        regexes = (PATTERNS[dest],) if dest in PATTERNS else ()
        default = None
    if action.default not in (None, False) and default is None:
        default = str(action.default)
    help_text = (action.help or "").strip()
    if repeated:
        help_text += " Several values: separate them with commas."
    group = next((name for prefix, name in GROUPS if dest.startswith(prefix)), "Detection")
    return TemplateParameter(
        name=dest,
        flag=flag,
        label=_label(dest),
        help_text=help_text,
        param_type=kind,
        optional=dest not in REQUIRED,
        group=group,
        regexes=regexes,
        default=default,
        repeated=repeated,
    )


def run_actions() -> list[argparse.Action]:
    """The options `kubesigma run --help` lists, in its order."""
    from kubesigma.pipeline.cli import run_parser

    return [a for a in run_parser()._actions if a.option_strings and a.dest != "help"]


def template_parameters() -> list[TemplateParameter]:
    return [_parameter(a) for a in run_actions() if excluded(a.dest) is None]


def metadata() -> dict[str, Any]:
    return {
        "name": "kubesigma",
        "description": "Sigma detections over Kubernetes audit logs from a GKE log sink's Pub/Sub "
        "subscription: ECS alerts to Cloud Storage and Elasticsearch, dead letters with their reason.",
        "streaming": True,
        # Correlation counts and suppression runs live in Beam state: duplicates would skew them.
        "supportsAtLeastOnce": False,
        "supportsExactlyOnce": True,
        "parameters": [p.metadata() for p in template_parameters()],
    }


def render() -> str:
    return json.dumps(metadata(), indent=2, ensure_ascii=False) + "\n"


def launcher_argv(argv: Sequence[str]) -> list[str]:
    """The launcher's arguments as `kubesigma run` takes them: each template parameter `--name=value`
    becomes the option it stands for (a BOOLEAN "true" the bare flag, a repeated option one flag per
    comma-separated value); Beam's and Dataflow's own options pass through unchanged."""
    by_name = {p.name: p for p in template_parameters()}
    out: list[str] = []
    for arg in argv:
        name, sep, value = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        param = by_name.get(name)
        if param is None:
            out.append(arg)
        elif not sep:
            raise OptionError(f"template parameter --{name}: expected --{name}=VALUE")
        elif param.param_type == "BOOLEAN":
            if value.lower() not in ("true", "false"):
                raise OptionError(f"template parameter {name}: {value!r} is neither true nor false")
            if value.lower() == "true":
                out.append(param.flag)
        elif param.repeated:
            out.extend(f"{param.flag}={part.strip()}" for part in value.split(",") if part.strip())
        else:
            out.append(f"{param.flag}={value}")
    return out


def launch(argv: Sequence[str]) -> int:
    """What the Flex Template's launcher runs: `kubesigma run --streaming` with the template's parameters."""
    from kubesigma.pipeline.cli import main

    # The template is streaming-only; however the launcher says so, the job gets one bare --streaming.
    args = [a for a in launcher_argv(argv) if a.split("=", 1)[0] != "--streaming"]
    return main(["run", "--streaming", *args])


def _difference(current: str) -> str:
    """Which parameters the checked-in file lacks or has too many of, for the failure message."""
    try:
        declared = {p["name"] for p in json.loads(current)["parameters"]}
    except (ValueError, KeyError, TypeError):
        return " (not a template metadata file)"
    expected = {p.name for p in template_parameters()}
    parts = [
        f"{what}: {', '.join(sorted(names))}"
        for what, names in (("new options", expected - declared), ("options gone", declared - expected))
        if names
    ]
    return f" ({'; '.join(parts)})" if parts else " (descriptions, types or order changed)"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flex_template", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(METADATA), help="where to write (default terraform/dataflow)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the options")
    args = parser.parse_args(argv)
    text = render()
    out = Path(args.out)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != text:
            print(
                f"{out} is out of date with `kubesigma run`'s options{_difference(current)}", file=sys.stderr
            )
            where = "" if out == METADATA else f" --out {out}"
            print(f"regenerate it: .venv/bin/python -m {MODULE}{where}", file=sys.stderr)
            return 1
        print(f"{out}: {len(metadata()['parameters'])} parameters, as `kubesigma run` declares them")
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(metadata()['parameters'])} parameters)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
