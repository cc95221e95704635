"""`kubesigma es retention` and `kubesigma kibana export`: Elasticsearch and Kibana housekeeping.

Retention deletes whole date-named indices (`<prefix>-alerts-YYYY.MM.DD`, `<prefix>-events-...`): what an
ILM delete phase does on clusters that have ILM, for clusters that do not (open-source builds)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from kubesigma.pipeline.options import OptionError


def _config(extra: Sequence[str]):  # -> ElasticsearchConfig
    from apache_beam.options.pipeline_options import PipelineOptions

    from kubesigma.connectors.sinks.es_config import (
        ElasticsearchConfigError,
        ElasticsearchOptions,
        config_from_options,
    )

    parser = argparse.ArgumentParser(prog="kubesigma es retention", add_help=False)
    ElasticsearchOptions._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(list(extra))
    if unknown:
        raise OptionError(f"unknown option(s): {' '.join(unknown)} (Elasticsearch options only)")
    try:
        config = config_from_options(PipelineOptions(list(extra)))
    except ElasticsearchConfigError as err:
        raise OptionError(str(err)) from err
    if config is None:
        raise OptionError("kubesigma es retention needs --es-url or --es-cloud-id")
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
