"""Settings of the embedded ClickHouse engine (chDB), given to every connection that may start it.

A long run's memory is set by background merges, not by what the engine caches: at
1M fleet events the engine tracks 10-40 MB between merges, and a horizontal merge adds
100-190 MB. A horizontal merge reads a block of every column from every part
at once, so its memory follows the width of the rows and the number and size of the
parts it merges, and the parts grow with the store: in ``bench/pipeline.py --memory``
merges of the audit ledger's 300k-row parts set the peak of a 1M-event run, 22% above
a 200k-event run. ClickHouse merges wide parts vertically (the sorting key first, then
each other column on its own) only from 131,072 rows and 11 columns other than the key
by default, which the ledger (9 such columns) and merges of fewer rows never reach.
Vertical merges of the same parts took 12-60 MB instead; the run's peak then grew 6%
from 200k to 1M events instead of 22% (bench/README.md, "Memory").

The settings are MergeTree defaults of this engine only, in a configuration file: they
are not written into the tables, so the migrations and any ClickHouse server over HTTP
are untouched (a server is tuned by its operator, in its own configuration). chDB starts
one engine per process and applies the options of whichever connection starts it,
silently ignoring them later: every connection to an embedded store goes through
:func:`chdb_options` or :func:`connection_string`.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

ENGINE_CONFIG = Path(__file__).resolve().parent / "embedded_engine.xml"


def chdb_options() -> dict[str, str]:
    """clickhouse-connect's ``chdb_options``: start-up arguments of the engine."""
    return {"config-file": str(ENGINE_CONFIG)}


def connection_string(directory: Path) -> str:
    """What ``chdb.connect`` takes for the store in ``directory``, with the engine's settings."""
    return f"{directory}?{urlencode(chdb_options())}"
