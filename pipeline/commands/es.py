"""`kubesigma es setup|retention|writer-role` and `kubesigma kibana export|import`: the Elasticsearch and
Kibana side of a deployment, idempotent and scriptable (a second run changes nothing; `--check` exits 1
on drift and changes nothing).

Retention deletes whole date-named indices (`<prefix>-alerts-YYYY.MM.DD`, `<prefix>-events-...`): what an
ILM delete phase does on clusters that have ILM, for clusters that do not (open-source builds)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kubesigma.pipeline.options import OptionError


def _config(extra: Sequence[str], command: str = "retention"):  # -> ElasticsearchConfig
    from apache_beam.options.pipeline_options import PipelineOptions

    from kubesigma.connectors.sinks.es_config import (
        ElasticsearchConfigError,
        ElasticsearchOptions,
        config_from_options,
    )

    parser = argparse.ArgumentParser(prog=f"kubesigma es {command}", add_help=False)
    ElasticsearchOptions._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(extra))
    if unknown:
        raise OptionError(f"unknown option(s): {' '.join(unknown)} (Elasticsearch options only)")
    try:
        config = config_from_options(PipelineOptions(list(extra)))
    except ElasticsearchConfigError as err:
        raise OptionError(str(err)) from err
    if config is None:
        raise OptionError(f"kubesigma es {command} needs --es-url or --es-cloud-id")
    return config


def run_retention(keep_days: int, extra: Sequence[str]) -> int:
    """Delete kubesigma's date-named indices older than `keep_days`; prints each deleted index."""
    from kubesigma.connectors.sinks.es_config import ElasticsearchConfigError, ElasticsearchUnavailable
    from kubesigma.connectors.sinks.es_indices import delete_expired_indices

    if keep_days < 1:
        raise OptionError("--keep-days must be at least 1")
    config = _config(extra)
    try:
        deleted = delete_expired_indices(config, keep_days)
    except ElasticsearchConfigError as err:
        raise OptionError(str(err)) from err
    except ElasticsearchUnavailable as err:
        print(f"kubesigma: {err}", file=sys.stderr)
        return 1
    except Exception as err:  # the client's connection errors: name the cluster, not a traceback
        from elastic_transport import TransportError

        if isinstance(err, TransportError):
            print(f"kubesigma: cannot reach Elasticsearch at {config.target}: {err}", file=sys.stderr)
            return 1
        raise
    for name in deleted:
        print(f"deleted {name}")
    print(f"{len(deleted)} index(es) older than {keep_days} days deleted from {config.target}")
    return 0


def run_kibana_export(out: str) -> int:
    """Write the Kibana saved objects (NDJSON) to `out`, or stdout for "-"."""
    from kubesigma.connectors.sinks.kibana import saved_objects_ndjson

    text = saved_objects_ndjson()
    if out == "-":
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")
        print(f"wrote {text.count(chr(10))} saved objects to {out}", file=sys.stderr)
    return 0


def run_setup(check: bool, extra: Sequence[str]) -> int:
    """Bring kubesigma's Elasticsearch objects to their definitions (or, with --check, report the drift)."""
    from elastic_transport import TransportError

    from kubesigma.connectors.sinks.es_config import ElasticsearchUnavailable
    from kubesigma.connectors.sinks.es_setup import setup

    config = _config(extra, "setup")
    try:
        report = setup(config, apply=not check)
    except (ElasticsearchUnavailable, TransportError) as err:
        print(f"kubesigma: Elasticsearch at {config.target}: {err}", file=sys.stderr)
        return 1
    for change in report.changes:
        print(change.line("elasticsearch", applied=not check))
    for note in report.notes:
        print(note)
    changed = len(report.drift)
    print(f"elasticsearch: {changed} of {len(report.changes)} objects {'differ' if check else 'changed'}")
    return 1 if check and changed else 0


def run_writer_role(extra: Sequence[str]) -> int:
    """Print the role descriptor for the job's API key (POST /_security/api_key, role_descriptors)."""
    import json

    from kubesigma.connectors.sinks.es_config import DEFAULT_PREFIX
    from kubesigma.connectors.sinks.es_setup import writer_role, writer_role_name

    parser = argparse.ArgumentParser(prog="kubesigma es writer-role", add_help=False)
    parser.add_argument("--es-index-prefix", default=DEFAULT_PREFIX)
    args, unknown = parser.parse_known_args(list(extra))
    if unknown:
        raise OptionError(f"unknown option(s): {' '.join(unknown)} (only --es-index-prefix)")
    print(json.dumps({writer_role_name(args.es_index_prefix): writer_role(args.es_index_prefix)}, indent=2))
    return 0


def run_kibana_import(args: argparse.Namespace) -> int:
    """Import the saved objects Kibana lacks or holds otherwise (or, with --check, report them)."""
    from kubesigma.connectors.sinks.kibana_api import KibanaConfig, KibanaError, import_saved_objects

    try:
        config = KibanaConfig(
            url=args.kibana_url,
            space=args.kibana_space,
            ca_certs=args.kibana_ca_certs,
            api_key_file=args.kibana_api_key_file,
        ).validate()
        changes = import_saved_objects(config, args.es_index_prefix, apply=not args.check)
    except KibanaError as err:
        print(f"kubesigma: {err}", file=sys.stderr)
        return 1
    for change in changes:
        print(change.line("kibana", applied=not args.check))
    changed = sum(c.outcome != "unchanged" for c in changes)
    print(f"kibana: {changed} of {len(changes)} saved objects {'differ' if args.check else 'imported'}")
    return 1 if args.check and changed else 0
