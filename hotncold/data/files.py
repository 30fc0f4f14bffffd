"""Rows of a local data file (jsonl, json, parquet, csv), with a bad file named in one line.

JSON is read here with the standard library rather than through `datasets`: its JSON reader
reports a torn or malformed line as a 74-line traceback that names neither the file nor the
line (and it caches a converted copy of every local file it reads). A bad line here is one
ConfigError naming the setting, the file, the line number and the fix. Parquet is read by
pyarrow and CSV by pandas, the libraries `datasets` itself uses for them; their first error
line already says where a file is broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hotncold.config import ConfigError

SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


def read_rows(path: Path, setting: str) -> list[dict[str, Any]]:
    """Every row of the file at `path` (the value of `setting`), as dicts with the same keys
    (a key some rows lack is None in them, as `datasets` reads such files)."""
    suffix = path.suffix.lower()
    where = f"{setting}={str(path)!r}"
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"{where} {what}; give a jsonl, json, parquet or csv file")
    if suffix not in SUFFIXES:
        raise ConfigError(f"{where}: use a .jsonl, .json, .parquet or .csv file")
    if suffix in (".jsonl", ".json"):
        rows = _json_rows(path, where, suffix)
    else:
        rows = _table_rows(path, where, suffix)
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return [{k: row.get(k) for k in keys} for row in rows]


def _json_rows(path: Path, where: str, suffix: str) -> list[dict[str, Any]]:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            f"{where} line {line} is not UTF-8 text; save the file as UTF-8"
        ) from None
    if suffix == ".json" and text.lstrip().startswith(("[", "{")):
        return _json_document(text, where)
    rows = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            last = number == text.rstrip("\n").count("\n") + 1
            hint = "cut off (an interrupted copy or write?)" if last else "not valid JSON"
            raise ConfigError(
                f"{where} line {number} is {hint}: {error.msg} (column {error.colno}); "
                f"fix or delete line {number} (one JSON object per line)"
            ) from None
        if not isinstance(row, dict):
            raise ConfigError(
                f"{where} line {number} is a JSON {type(row).__name__}, not an object; write "
                "one JSON object per line"
            )
        rows.append(row)
    return rows


def _json_document(text: str, where: str) -> list[dict[str, Any]]:
    """A whole-file JSON list of rows, or an object of equal-length columns."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(
            f"{where} is not valid JSON at line {error.lineno} column {error.colno} "
            f"({error.msg}); fix it there, or write one JSON object per line (.jsonl)"
        ) from None
    if isinstance(data, dict) and all(isinstance(v, list) for v in data.values()):
        lengths = {len(v) for v in data.values()}
        if len(lengths) > 1:
            raise ConfigError(f"{where} holds columns of different lengths; make them equal")
        count = lengths.pop() if lengths else 0
        return [{k: v[i] for k, v in data.items()} for i in range(count)]
    if not isinstance(data, list) or not all(isinstance(row, dict) for row in data):
        raise ConfigError(
            f"{where} holds neither a list of rows nor an object of columns; write a list of "
            "JSON objects, or one object per line (.jsonl)"
        )
    return data


def _table_rows(path: Path, where: str, suffix: str) -> list[dict[str, Any]]:
    try:
        if suffix == ".parquet":
            import pyarrow.parquet

            return pyarrow.parquet.read_table(path).to_pylist()
        import pandas as pd

        frame = pd.read_csv(path)
    except Exception as error:  # pyarrow and pandas raise many types; the first line says where
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        kind = suffix.lstrip(".")
        raise ConfigError(
            f"{where} cannot be read as {kind}: {first}; fix or replace the file"
        ) from None
    # Python values (not numpy's), and None for an empty cell
    return frame.astype(object).where(frame.notna(), None).to_dict("records")
