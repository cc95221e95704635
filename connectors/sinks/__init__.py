"""Sinks: JSON-lines files and Elasticsearch. Each takes one PCollection of documents or a tuple of them
(documents made in several steps): in-process runners copy every element a Flatten gathers, so a sink
gathers only what it has to, after turning documents into what it writes."""

from __future__ import annotations

from typing import Any

from apache_beam import pvalue


def document_inputs(docs: Any) -> tuple[pvalue.PCollection, ...]:
    """The PCollections a sink was given: one, or a tuple (or list) of them."""
    return tuple(docs) if isinstance(docs, (tuple, list)) else (docs,)
