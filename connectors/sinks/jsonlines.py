"""JSON-lines files: one JSON document a line; one file for a batch run, a file per minute of event time
for a streaming one. Alerts and dead letters are written this way."""

from __future__ import annotations

import apache_beam as beam
import orjson
from apache_beam import pvalue
from apache_beam.transforms.window import FixedWindows

from kubesigma.connectors.model import DeadLetter


class WriteJsonLines(beam.PTransform):
    """One JSON document per line into exactly one file (written whole at the end, then renamed)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def expand(self, docs: pvalue.PCollection) -> pvalue.PDone:
        return (
            docs
            | "Json" >> beam.Map(lambda doc: orjson.dumps(doc).decode("utf-8"))
            | "Write" >> beam.io.WriteToText(self.path, shard_name_template="", num_shards=1)
        )


class WriteJsonLinesWindowed(beam.PTransform):
    """Streaming file output: one JSON document per line, a file per minute of event time under `directory`
    (batch runs write one file with `WriteJsonLines`).

    Documents may arrive behind the watermark (an allowed-late event's correlation, a suppression
    follow-up): up to `lateness` seconds they still get written, each late firing into a file of its own
    (`...-pane-N`), so nothing already written is overwritten."""

    def __init__(self, directory: str, window: float = 60.0, lateness: float = 0.0) -> None:
        super().__init__()
        self.directory = directory
        self.window = window
        self.lateness = lateness

    def expand(self, docs: pvalue.PCollection) -> pvalue.PDone:
        from apache_beam.io import fileio
        from apache_beam.utils.timestamp import Duration

        return (
            docs
            | "Json" >> beam.Map(lambda doc: orjson.dumps(doc).decode("utf-8"))
            | "Minutes"
            >> beam.WindowInto(FixedWindows(self.window), allowed_lateness=Duration(seconds=self.lateness))
            | "Write"
            >> fileio.WriteToFiles(
                path=self.directory, shards=1, max_writers_per_bundle=0, file_naming=_minute_file_naming
            )
        )


def _minute_file_naming(window, pane, shard_index, total_shards, compression, destination) -> str:
    """`output-<start>-<end>[-pane-N]-<shard>-of-<shards>`: Beam's default naming leaves the pane out, so a
    late firing of a minute would replace that minute's on-time file."""
    start = window.start.to_utc_datetime().isoformat()
    end = window.end.to_utc_datetime().isoformat()
    late = f"-pane-{pane.index}" if pane is not None and pane.index else ""
    suffix = f".{compression}" if compression else ""
    return f"output-{start}-{end}{late}-{int(shard_index or 0):05d}-of-{int(total_shards or 1):05d}{suffix}"


def dead_letter_documents(dead_letters: pvalue.PCollection) -> pvalue.PCollection:
    """Dead letters as the documents the dead-letter file holds, one a line."""
    return dead_letters | "DeadLetterJson" >> beam.Map(DeadLetter.as_dict)
