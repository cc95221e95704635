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
                     [--suppress-window 10m] [--streaming] [Elasticsearch options] [Beam pipeline options]"""


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

    kibana = sub.add_parser("kibana", help="Kibana saved objects")
    kibana_sub = kibana.add_subparsers(dest="kibana_command", required=True, metavar="ACTION")
    kexport = kibana_sub.add_parser("export", help="write the data view, dashboard and saved searches")
    kexport.add_argument("--out", default="-")
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
        from kubesigma.detections.engine import RuleLoadError
        from kubesigma.pipeline.options import OptionError
        from kubesigma.pipeline.run import JobFailed

        user_errors = (
            OptionError,
            RuleLoadError,
            FileNotFoundError,
            ElasticsearchConfigError,
            ElasticsearchUnavailable,
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
        from kubesigma.pipeline.commands.es import run_retention

        return run_retention(args.keep_days, args.extra)
    if args.command == "kibana":
        from kubesigma.pipeline.commands.es import run_kibana_export

        return run_kibana_export(args.out)
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
    from kubesigma.pipeline.commands.rules_export import run_export

    return run_export(args.paths, args.fmt, args.out)


def _run_help() -> int:
    from apache_beam.options.pipeline_options import PipelineOptions

    from kubesigma.pipeline.options import KubesigmaOptions

    parser = argparse.ArgumentParser(prog="kubesigma run", usage=RUN_USAGE)
    KubesigmaOptions._add_argparse_args(parser)
    for cls in PipelineOptions.__subclasses__():
        if cls.__module__.startswith("kubesigma") and cls is not KubesigmaOptions:
            cls._add_argparse_args(parser)  # type: ignore[arg-type]
    parser.print_help()
    print("\nAny Beam pipeline option is accepted too (--runner, --streaming, --project, ...).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
