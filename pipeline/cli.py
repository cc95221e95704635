"""The `kubesigma` command: run the detection job, work with rules, backfill cloud logs, manage Elasticsearch.

Subcommands live in `pipeline/commands/`; each is imported only when used, so `kubesigma rules check`
does not pay for Beam's start-up.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

RUN_USAGE = """kubesigma run --input FILE|DIR|GLOB|- [--input ...] --alerts-out FILE --dead-letter FILE
                     [--metrics-out FILE] [--rules DIR ...] [--cluster-name NAME]
                     [--engine-config FILE] [--max-record-bytes 16MiB] [--soft-record-bytes 1MiB]
                     [--suppress-window 10m] [--since T] [--until T] [--streaming] [Elasticsearch options] [Beam pipeline options]"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubesigma", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO (Beam's own logs too)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser(
        "run",
        help="run the detection pipeline (batch over files, or --streaming)",
        usage=RUN_USAGE,
        add_help=False,
        prefix_chars="\0",  # everything after `run` goes to Beam's option parsing
    ).add_argument("args", nargs=argparse.REMAINDER)

    rules = sub.add_parser("rules", help="check, test, export and document Sigma rules")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True, metavar="ACTION")
    check = rules_sub.add_parser("check", help="load and compile rules; report per file")
    check.add_argument("paths", nargs="*", help="rule files or folders (default: the shipped pack)")
    check.add_argument("--engine-config", help="YAML: disabled rules and filters")
    test = rules_sub.add_parser("test", help="run every rule's positive and negative test events")
    test.add_argument("paths", nargs="*")
    coverage = rules_sub.add_parser("coverage", help="list rules that cannot fire under an audit Policy")
    coverage.add_argument("--policy", required=True, help="audit.k8s.io Policy YAML")
    coverage.add_argument("paths", nargs="*")
    explain = rules_sub.add_parser(
        "explain",
        help="why a rule did or did not match an event (exit 0 match, 1 no match, 2 error)",
        description="Why a rule did or did not match an event: every selection and field, the value the "
        "event has there, the condition step by step, filters, the outcome gate and routing.",
    )
    explain.add_argument("--rule", required=True, help="rule id or name (in --rules), or a rule file")
    explain.add_argument(
        "--event",
        required=True,
        help="FILE[:LINE] holding the record (any format kubesigma reads); - for stdin",
    )
    explain.add_argument(
        "--rules", action="append", default=None, help="rule files or folders (default: the shipped pack)"
    )
    explain.add_argument("--engine-config", help="YAML: disabled rules, filters and lists, as for run")
    explain.add_argument("--cluster-name", help="cluster name for events whose envelope names none")
    explain.add_argument("--json", action="store_true", help="the explanation as JSON")
    backtest = rules_sub.add_parser(
        "backtest",
        help="replay archived audit logs through the batch job; alerts per rule, and a rule change's diff",
        description="Run `kubesigma run`'s batch job (correlation and suppression as configured) over "
        "archived audit logs and report per rule: alerts, alerts per day, distinct identities, sources "
        "and namespaces, top groups. With --baseline: alerts only the new rules raise, alerts they no "
        "longer raise, level changes. Progress goes to standard error.",
    )
    backtest.add_argument(
        "--input", action="append", required=True, help="glob of audit log files (any format kubesigma reads)"
    )
    backtest.add_argument(
        "--rules", action="append", default=None, help="the rules to try (default: the shipped pack)"
    )
    backtest.add_argument("--baseline", action="append", default=None, help="the rules to compare with")
    backtest.add_argument("--since", help="only events at or after this time (ISO 8601)")
    backtest.add_argument("--until", help="only events before this time (ISO 8601)")
    backtest.add_argument("--json", action="store_true", help="one JSON document on standard output")
    backtest.add_argument("--html", help="write a self-contained HTML report with daily histograms here")
    backtest.add_argument("--engine-config", help="YAML: disabled rules, filters and lists, as for run")
    backtest.add_argument(
        "--suppress-window", help="fold repeats within this window, as for run (default off)"
    )
    backtest.add_argument("--cluster-name", help="cluster name for events whose envelope names none")
    new = rules_sub.add_parser("new", help="write a rule file and its test cases in the shipped layout")
    new.add_argument("title", help="the rule's title; the file is named after it")
    new.add_argument("--dir", help="the pack folder holding rules/ and tests/ (default: the shipped pack)")
    lint = rules_sub.add_parser(
        "lint", help="unmapped fields, rules a Policy blinds, rules without tests, unknown tags"
    )
    lint.add_argument("paths", nargs="*", help="rule files or folders (default: the shipped pack)")
    lint.add_argument("--policy", help="audit.k8s.io Policy YAML: also list rules it leaves unable to fire")
    export = rules_sub.add_parser("export", help="convert rules for other tools")
    export.add_argument("--format", required=True, choices=["elastic"], dest="fmt")
    export.add_argument("--out", default="-", help="file to write (default: stdout)")
    export.add_argument("paths", nargs="*")

    demo = sub.add_parser("demo", help="demo data")
    demo_sub = demo.add_subparsers(dest="demo_command", required=True, metavar="ACTION")
    gen = demo_sub.add_parser("generate", help="write a deterministic slice of a cluster's audit log")
    gen.add_argument("--out", required=True)
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--events", type=int, default=5000)
    gen.add_argument("--cluster", default="demo")

    backfill = sub.add_parser("backfill", help="fetch past audit logs from GKE or EKS into files")
    backfill_sub = backfill.add_subparsers(dest="cloud", required=True, metavar="CLOUD")
    gke = backfill_sub.add_parser("gke", help="Cloud Logging (Application Default Credentials)")
    gke.add_argument("--project", required=True)
    gke.add_argument("--cluster", required=True)
    gke.add_argument("--since", required=True, help="RFC 3339 time")
    gke.add_argument("--until")
    gke.add_argument("--out", required=True)
    eks = backfill_sub.add_parser("eks", help="CloudWatch Logs (the AWS default credential chain)")
    eks.add_argument("--cluster", required=True)
    eks.add_argument("--region", required=True)
    eks.add_argument("--since", required=True, help="RFC 3339 time")
    eks.add_argument("--until")
    eks.add_argument("--out", required=True)
    eks.add_argument("--checkpoint", help="file recording progress, to resume an interrupted backfill")

    es = sub.add_parser("es", help="Elasticsearch housekeeping")
    es_sub = es.add_subparsers(dest="es_command", required=True, metavar="ACTION")
    retention = es_sub.add_parser("retention", help="delete date-named indices older than N days")
    retention.add_argument("--keep-days", type=int, required=True)
    retention.epilog = "Elasticsearch options (--es-url, --es-ca-certs, ...) as for `kubesigma run`."
    setup = es_sub.add_parser(
        "setup",
        help="install or update kubesigma's templates, lifecycle policies and writer role (idempotent)",
    )
    setup.add_argument("--check", action="store_true", help="change nothing; exit 1 if something differs")
    setup.epilog = (
        "Elasticsearch options (--es-url, --es-ca-certs, --es-index-events, ...) as for `kubesigma run`."
    )
    es_sub.add_parser("writer-role", help="print the role descriptor of the job's identity (JSON)")

    kibana = sub.add_parser("kibana", help="Kibana saved objects")
    kibana_sub = kibana.add_subparsers(dest="kibana_command", required=True, metavar="ACTION")
    kexport = kibana_sub.add_parser("export", help="write the data view, dashboard and saved searches")
    kexport.add_argument("--out", default="-")
    kimport = kibana_sub.add_parser("import", help="import the saved objects Kibana lacks or holds otherwise")
    kimport.add_argument("--kibana-url", required=True, help="http(s)://host:port of Kibana")
    kimport.add_argument("--kibana-space", help="Kibana space (default: the default space)")
    kimport.add_argument("--kibana-ca-certs", help="PEM of the CA that signed Kibana's certificate")
    kimport.add_argument(
        "--kibana-api-key-file", help="file holding a Kibana API key (else KUBESIGMA_KIBANA_API_KEY)"
    )
    kimport.add_argument("--es-index-prefix", default="kubesigma", help="index prefix the data views match")
    kimport.add_argument("--check", action="store_true", help="change nothing; exit 1 if something differs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "es":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("apache_beam").setLevel(logging.ERROR)
    try:
        return _dispatch(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `kubesigma run ... | head`: the reader left; the job's outputs are already written.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as err:  # user-caused errors carry their own message; show it, not a traceback
        from kubesigma.connectors.sinks.es_config import ElasticsearchConfigError, ElasticsearchUnavailable
        from kubesigma.connectors.sources.kafka_config import KafkaConfigError
        from kubesigma.detections.engine import RuleLoadError
        from kubesigma.pipeline.options import OptionError
        from kubesigma.pipeline.run import JobFailed

        user_errors = (
            OptionError,
            RuleLoadError,
            FileNotFoundError,
            ElasticsearchConfigError,
            ElasticsearchUnavailable,
            KafkaConfigError,
        )
        if isinstance(err, user_errors):
            print(f"kubesigma: {err}", file=sys.stderr)
            return 2
        if isinstance(err, JobFailed):
            hint = "" if args.verbose else " (--verbose shows where)"
            print(f"kubesigma: {err}{hint}", file=sys.stderr)
            if args.verbose:
                raise
            return 1
        raise


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        if any(a in ("-h", "--help") for a in args.args):
            return _run_help()
        from kubesigma.pipeline.beam_import import import_beam_without_cloud_io, local_job

        if local_job(args.args):
            import_beam_without_cloud_io()
        from kubesigma.pipeline.run import run

        run(args.args, sys.stdout)
        return 0
    if args.command == "rules":
        return _rules(args)
    if args.command == "demo":
        from kubesigma.pipeline.commands.demo import run_generate

        return run_generate(args.out, args.seed, args.events, args.cluster)
    if args.command == "backfill":
        from kubesigma.pipeline.commands import backfill

        if args.cloud == "gke":
            return backfill.run_backfill_gke(args.project, args.cluster, args.since, args.until, args.out)
        return backfill.run_backfill_eks(
            args.cluster, args.region, args.since, args.until, args.out, args.checkpoint
        )
    if args.command == "es":
        from kubesigma.pipeline.commands import es

        if args.es_command == "setup":
            return es.run_setup(args.check, args.extra)
        if args.es_command == "writer-role":
            return es.run_writer_role(args.extra)
        return es.run_retention(args.keep_days, args.extra)
    if args.command == "kibana":
        from kubesigma.pipeline.commands import es

        if args.kibana_command == "import":
            return es.run_kibana_import(args)
        return es.run_kibana_export(args.out)
    raise AssertionError(args.command)


def _rules(args: argparse.Namespace) -> int:
    if args.rules_command == "check":
        from kubesigma.pipeline.commands.rules_check import run_check

        return run_check(args.paths, args.engine_config)
    if args.rules_command == "test":
        from kubesigma.pipeline.commands.rules_test import run_test

        return run_test(args.paths)
    if args.rules_command == "coverage":
        from kubesigma.pipeline.commands.rules_coverage import run_coverage

        return run_coverage(args.policy, args.paths)
    if args.rules_command == "explain":
        from kubesigma.pipeline.commands.rules_explain import run_explain

        return run_explain(
            args.rule,
            args.event,
            rule_paths=args.rules or (),
            engine_config=args.engine_config,
            as_json=args.json,
            cluster=args.cluster_name,
        )
    if args.rules_command == "new":
        from kubesigma.pipeline.commands.rules_new import run_new

        return run_new(args.title, args.dir)
    if args.rules_command == "lint":
        from kubesigma.pipeline.commands.rules_lint import run_lint

        return run_lint(args.paths, args.policy)
    if args.rules_command == "backtest":
        from kubesigma.pipeline.commands.rules_backtest import run_backtest

        return run_backtest(
            args.input,
            args.rules or (),
            args.baseline or (),
            args.since,
            args.until,
            as_json=args.json,
            html_out=args.html,
            engine_config=args.engine_config,
            suppress_window=args.suppress_window,
            cluster=args.cluster_name,
        )
    from kubesigma.pipeline.commands.rules_export import run_export

    return run_export(args.paths, args.fmt, args.out)


def run_parser() -> argparse.ArgumentParser:
    """The options kubesigma itself declares for `kubesigma run` (Beam's own are accepted too, not listed):
    what `--help` prints and what the Dataflow Flex Template declares (pipeline/commands/flex_template.py).
    Every PipelineOptions class of a kubesigma module counts, so a new options class is listed as soon as
    the job imports it."""
    from apache_beam.options.pipeline_options import PipelineOptions

    import kubesigma.pipeline.run  # noqa: F401  (imports every module that declares options of the job)
    from kubesigma.pipeline.options import KubesigmaOptions

    found: list[type] = []
    stack = list(PipelineOptions.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls.__module__.startswith("kubesigma") and cls not in found:
            found.append(cls)
        stack.extend(cls.__subclasses__())
    # The job's own options first, then the others by module, so the listing is stable.
    found.sort(key=lambda cls: (cls is not KubesigmaOptions, cls.__module__, cls.__name__))
    parser = argparse.ArgumentParser(prog="kubesigma run", usage=RUN_USAGE)
    for cls in found:
        cls._add_argparse_args(parser)  # type: ignore[arg-type]
    return parser


def _run_help() -> int:
    run_parser().print_help()
    print("\nAny Beam pipeline option is accepted too (--runner, --streaming, --project, ...).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
