"""JSON-lines files: one JSON document a line; one file for a batch run, a file every minute of wall-clock
time for a streaming one. Alerts and dead letters are written this way."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import apache_beam as beam
import orjson
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindows

from kubesigma.connectors.model import DeadLetter
from kubesigma.connectors.sinks import document_inputs


class WriteJsonLines(beam.PTransform):
    """One JSON document per line into exactly one file, written whole at the end, then renamed.

    Each bundle writes its lines to a part file of its own under a hidden directory beside the target;
    at the end one step joins the parts the runner kept (a retried bundle's other try is not among
    them) under a temporary name, renames it to the target, and removes the directory. Only the parts'
    names go from step to step: Beam's WriteToText sends every line through a GroupByKey, which an
    in-process runner holds in memory, decoded and encoded again (a fifth of a batch run's time went
    there with a few alerts per hundred events)."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def expand(self, docs: Any) -> pvalue.PDone:
        from apache_beam.io.filesystems import FileSystems

        directory, name = FileSystems.split(self.path)
        # Named at construction: every worker of this run writes its parts into the same directory.
        parts_dir = FileSystems.join(directory, f".{name}.parts-{uuid.uuid4().hex[:12]}")
        # Each input writes parts of its own: a Flatten of the documents would copy each once more.
        sides = document_inputs(docs)
        parts = [
            side | f"Parts{n or ''}" >> beam.ParDo(_WriteParts(parts_dir)) for n, side in enumerate(sides)
        ]
        names = parts[0] if len(parts) == 1 else parts | "PartNames" >> beam.Flatten()
        # Started by an Impulse, not a Create of the path: a Create is four steps, each paid for at start-up.
        return (
            sides[0].pipeline
            | "Target" >> beam.Impulse()
            | "Join" >> beam.ParDo(_JoinParts(parts_dir, self.path), beam.pvalue.AsList(names))
        )


class _WriteParts(beam.DoFn):
    """A bundle's documents, a line each, into a part file of its own; its name goes on once the bundle
    is done."""

    def __init__(self, parts_dir: str) -> None:
        self.parts_dir = parts_dir

    def start_bundle(self) -> None:
        self.part: str | None = None
        self.handle: Any = None

    def process(self, doc: Any) -> None:
        if self.handle is None:
            from apache_beam.io.filesystems import FileSystems

            with contextlib.suppress(OSError):
                FileSystems.mkdirs(self.parts_dir)
            self.part = FileSystems.join(self.parts_dir, f"part-{uuid.uuid4().hex}")
            self.handle = FileSystems.create(self.part)
        self.handle.write(orjson.dumps(doc) + b"\n")

    def finish_bundle(self) -> Iterator[Any]:
        if self.handle is not None:
            self.handle.close()
            self.handle = None
            yield GlobalWindows.windowed_value(self.part)


class _JoinParts(beam.DoFn):
    def __init__(self, parts_dir: str, path: str) -> None:
        self.parts_dir = parts_dir
        self.path = path

    def process(self, _impulse: bytes, parts: list[str]) -> Iterator[str]:
        from apache_beam.io.filesystems import FileSystems

        path = self.path
        directory, name = FileSystems.split(path)
        with contextlib.suppress(OSError):
            FileSystems.mkdirs(directory)
        if len(parts) == 1:
            FileSystems.rename(parts, [path])
        else:
            temp = FileSystems.join(directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
            with FileSystems.create(temp) as out:
                for part in sorted(parts):
                    with FileSystems.open(part) as handle:
                        shutil.copyfileobj(handle, out, 1 << 20)
            FileSystems.rename([temp], [path])
        if FileSystems.exists(self.parts_dir):
            FileSystems.delete([self.parts_dir])
        yield path


class WriteJsonLinesStreaming(beam.PTransform):
    """Streaming file output: one JSON document per line, a new file under `directory` every `every`
    seconds of wall-clock time (sooner past `max_docs`) holding what arrived since the last one (batch runs
    write one file with `WriteJsonLines`).

    Documents are gathered in the global window, whatever their event time: a stream's watermark may be
    far past a document's event time when it is decided (a suppression follow-up when its run closes, a
    correlation when its window closes, an alert of a late record), and an event-time window would drop
    it as late. Each file is named by its content (`part-<sha1>.jsonl`, its lines in order), written under
    a dot name and renamed, so a retried bundle or a replay writes the same file again instead of a copy.
    """

    def __init__(self, directory: str, every: float = 60.0, max_docs: int = 50_000) -> None:
        super().__init__()
        self.directory = directory
        self.every = every
        self.max_docs = max_docs

    def expand(self, docs: Any) -> pvalue.PDone:
        from apache_beam.transforms import trigger
        from apache_beam.transforms.window import GlobalWindows

        every = trigger.Repeatedly(
            trigger.AfterAny(trigger.AfterProcessingTime(int(self.every)), trigger.AfterCount(self.max_docs))
        )
        return (
            _gathered(docs, lambda doc: (None, orjson.dumps(doc)))
            | "Every"
            >> beam.WindowInto(
                GlobalWindows(), trigger=every, accumulation_mode=trigger.AccumulationMode.DISCARDING
            )
            | "Gather" >> beam.GroupByKey()
            | "Write" >> beam.ParDo(_WritePart(self.directory))
        )


def _gathered(docs: Any, line: Callable[[Any], Any]) -> pvalue.PCollection:
    """Each input's documents as lines ("Json", "Json1", ...), then one PCollection of them all."""
    lines = [side | f"Json{n or ''}" >> beam.Map(line) for n, side in enumerate(document_inputs(docs))]
    return lines[0] if len(lines) == 1 else lines | "Lines" >> beam.Flatten()


class _WritePart(beam.DoFn):
    def __init__(self, directory: str) -> None:
        self.directory = directory

    def process(self, element: tuple[None, Iterable[bytes]]) -> Iterator[str]:
        from apache_beam.io.filesystems import FileSystems

        lines = sorted(element[1])
        if not lines:
            return
        body = b"\n".join(lines) + b"\n"
        name = f"part-{hashlib.sha1(body).hexdigest()[:20]}.jsonl"
        final = FileSystems.join(self.directory, name)
        if FileSystems.exists(final):
            return  # written by an earlier try of this pane
        temp = FileSystems.join(self.directory, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
        with contextlib.suppress(OSError):
            FileSystems.mkdirs(self.directory)
        with FileSystems.create(temp) as handle:
            handle.write(body)
        FileSystems.rename([temp], [final])
        yield final


def dead_letter_documents(dead_letters: pvalue.PCollection) -> pvalue.PCollection:
    """Dead letters as the documents the dead-letter file holds, one a line."""
    return dead_letters | "DeadLetterJson" >> beam.Map(DeadLetter.as_dict)
