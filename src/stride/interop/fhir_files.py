"""Reading FHIR files without loading them whole: NDJSON line by line, Bundles entry by entry.

:func:`plan` expands folders and looks at each file once: an NDJSON file
(``.ndjson``, ``.jsonl``, gzipped or not) by its first line, a JSON file
(``.json``) by reading it through with :class:`JsonStream`, which decodes one
value at a time from a small window of the file, so a Bundle of any size is
read entry by entry. :func:`read` then yields the resources of one file, each
with the line it starts on, as :class:`Entry` values; a line that is not JSON
is an entry with an ``error``, and reading goes on with the next line.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

NDJSON_SUFFIXES = (".ndjson", ".jsonl", ".ndjson.gz", ".jsonl.gz")
JSON_SUFFIXES = (".json", ".json.gz")
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class FileError(Exception):
    """A file cannot be read at all (missing, unreadable, a Bundle that stops being JSON)."""


@dataclass(frozen=True)
class Entry:
    """One resource read from a file (or the reason it could not be read)."""

    path: Path
    line: int
    entry: int | None = None  # its position in a Bundle
    resource: dict[str, Any] | None = None
    full_url: str | None = None
    error: str | None = None

    @property
    def where(self) -> str:
        place = f"{self.path.name}:{self.line}"
        return place if self.entry is None else f"{place} (entry {self.entry + 1})"


@dataclass
class Source:
    """One input file, looked at once: what it holds and how it is read."""

    path: Path
    kind: str  # "ndjson", "bundle", "resource" or "other"
    resource_type: str | None = None  # of an NDJSON file's first line, or of a one-resource file
    types: Counter[str] = field(default_factory=Counter)  # of a Bundle's entries: how many of each
    urls: dict[str, tuple[str, str]] = field(default_factory=dict)  # a Bundle's fullUrl → (type, id)
    lines: int = 0  # an NDJSON file's non-blank lines
    note: str = ""  # why a file is not read ("other")
    problems: list[tuple[int, int | None, str]] = field(default_factory=list)  # a Bundle's bad entries


def _open(path: Path) -> TextIO:
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig")
    return path.open("r", encoding="utf-8-sig")


def _suffix(path: Path, suffixes: tuple[str, ...]) -> bool:
    return path.name.lower().endswith(suffixes)


def expand(paths: Iterable[Path | str]) -> list[Path]:
    """Files named, and the FHIR files (NDJSON and JSON) of folders named, in order; missing ones raise."""
    files: list[Path] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            found = [
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
                and _suffix(p, NDJSON_SUFFIXES + JSON_SUFFIXES)
            ]
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileError(f"{path}: no such file or folder.")
    return files


# --------------------------------------------------------------------------- JSON, a value at a time


class JsonStream:
    """Decodes one JSON value at a time from a text file, keeping a small window of it in memory."""

    def __init__(self, handle: TextIO, chunk: int = 1 << 16) -> None:
        self.handle = handle
        self.chunk = chunk
        self.buffer = ""
        self.pos = 0
        self.eof = False
        self.line = 1

    def _more(self, size: int | None = None) -> bool:
        if self.eof:
            return False
        data = self.handle.read(size or self.chunk)
        if not data:
            self.eof = True
            return False
        if self.pos:
            self.buffer = self.buffer[self.pos :]
            self.pos = 0
        self.buffer += data
        return True

    def _advance(self, to: int) -> None:
        self.line += self.buffer.count("\n", self.pos, to)
        self.pos = to

    def peek(self) -> str:
        """The next character that is not white space ('' at the end), not consumed."""
        while True:
            end = _WS.match(self.buffer, self.pos)
            assert end is not None
            self._advance(end.end())
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self._more():
                return ""

    def take(self, expected: str) -> None:
        found = self.peek()
        if found != expected:
            shown = repr(found) if found else "the end of the file"
            raise FileError(f"expected {expected!r} at line {self.line}, found {shown}")
        self._advance(self.pos + 1)

    def value(self) -> Any:
        """The next JSON value, decoded."""
        self.peek()
        size = self.chunk
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as error:
                if self._more(size):
                    size *= 2  # a long value: read ahead in ever larger steps
                    continue
                raise FileError(f"not JSON at line {self.line}: {error.msg}") from None
            # A number at the very end of the window may go on in the next part of the file.
            if end == len(self.buffer) and isinstance(value, int | float) and self._more():
                continue
            self._advance(end)
            return value


def iter_object(stream: JsonStream) -> Iterator[tuple[str, Any, int, int | None]]:
    """The top-level object's members as (key, value, line, index); an ``entry`` array member by member."""
    stream.take("{")
    if stream.peek() == "}":
        return
    while True:
        key = stream.value()
        if not isinstance(key, str):
            raise FileError(f"expected a key at line {stream.line}")
        stream.take(":")
        if key == "entry" and stream.peek() == "[":
            stream.take("[")
            index = 0
            if stream.peek() != "]":
                while True:
                    stream.peek()
                    line = stream.line
                    yield key, stream.value(), line, index
                    index += 1
                    if stream.peek() == ",":
                        stream.take(",")
                        continue
                    break
            stream.take("]")
        else:
            line = stream.line
            yield key, stream.value(), line, None
        if stream.peek() == ",":
            stream.take(",")
            continue
        stream.take("}")
        return


# --------------------------------------------------------------------------- looking at files once


def resource_id(resource: dict[str, Any], full_url: str | None) -> str | None:
    """A resource's id, or the UUID of its ``urn:uuid:`` fullUrl in a Bundle."""
    if isinstance(resource.get("id"), str) and resource["id"]:
        return resource["id"]
    if full_url and full_url.startswith("urn:uuid:"):
        return full_url[len("urn:uuid:") :]
    return None


def _look_ndjson(path: Path) -> Source:
    source = Source(path, "ndjson")
    with _open(path) as handle:
        for raw in handle:
            if not raw.strip():
                continue
            source.lines += 1
            if source.resource_type is None and source.lines <= 100:
                # The type of the first line that is a resource (a broken line is reported when read).
                try:
                    first = json.loads(raw)
                except json.JSONDecodeError:
                    continue
                if isinstance(first, dict) and isinstance(first.get("resourceType"), str):
                    source.resource_type = first["resourceType"]
    if source.resource_type is None:
        source.kind = "other"
        source.note = "its first lines are not FHIR resources (no resourceType)"
    return source


def _look_json(path: Path) -> Source:
    source = Source(path, "resource")
    top_type = None
    with _open(path) as handle:
        stream = JsonStream(handle)
        try:
            for key, value, line, index in iter_object(stream):
                if index is not None:
                    resource = value.get("resource") if isinstance(value, dict) else None
                    if isinstance(resource, dict) and isinstance(resource.get("resourceType"), str):
                        source.types[resource["resourceType"]] += 1
                        full_url = value.get("fullUrl")
                        found = resource_id(resource, full_url)
                        if isinstance(full_url, str) and found:
                            source.urls[full_url] = (resource["resourceType"], found)
                    else:
                        source.problems.append((line, index, "a Bundle entry without a resource"))
                elif key == "resourceType":
                    top_type = value
        except FileError as error:
            if not source.types:
                source.kind, source.note = "other", f"cannot be read: {error}"
                return source
            source.problems.append((stream.line, None, f"the rest of the Bundle cannot be read: {error}"))
    if top_type == "Bundle" or (top_type is None and source.types):
        source.kind = "bundle"
    elif isinstance(top_type, str):
        source.resource_type = top_type
    else:
        source.kind, source.note = "other", "it is not a FHIR resource (no resourceType)"
    return source


def plan(paths: Iterable[Path | str]) -> list[Source]:
    """Every file to read, looked at once (folders expanded)."""
    sources = []
    for path in expand(paths):
        try:
            if _suffix(path, NDJSON_SUFFIXES):
                sources.append(_look_ndjson(path))
            else:
                sources.append(_look_json(path))
        except (OSError, UnicodeDecodeError, EOFError) as error:
            sources.append(Source(path, "other", note=f"cannot be read: {error}"))
    return sources


# --------------------------------------------------------------------------- reading


def _ndjson(source: Source) -> Iterator[Entry]:
    with _open(source.path) as handle:
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            try:
                resource = json.loads(raw)
            except json.JSONDecodeError as error:
                yield Entry(source.path, number, error=f"not JSON ({error.msg} at column {error.colno})")
                continue
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                yield Entry(source.path, number, error="not a FHIR resource (no resourceType)")
                continue
            yield Entry(source.path, number, resource=resource)


def _bundle(source: Source, types: set[str] | None) -> Iterator[Entry]:
    with _open(source.path) as handle:
        stream = JsonStream(handle)
        try:
            for _key, value, line, index in iter_object(stream):
                if index is None:
                    continue
                resource = value.get("resource") if isinstance(value, dict) else None
                if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                    continue  # reported from plan(): Source.problems
                if types is not None and resource["resourceType"] not in types:
                    continue
                full_url = value.get("fullUrl") if isinstance(value.get("fullUrl"), str) else None
                yield Entry(source.path, line, index, resource=resource, full_url=full_url)
        except FileError:
            return  # reported from plan(): Source.problems; what came before it was read


def _single(source: Source) -> Iterator[Entry]:
    with _open(source.path) as handle:
        resource = json.load(handle)
    yield Entry(source.path, 1, resource=resource)


def read(source: Source, types: set[str] | None = None) -> Iterator[Entry]:
    """The resources of one file (of a Bundle: those of ``types``, ``None`` for all)."""
    if source.kind == "ndjson":
        yield from _ndjson(source)
    elif source.kind == "bundle":
        yield from _bundle(source, types)
    elif source.kind == "resource":
        yield from _single(source)


def count(source: Source) -> int:
    """How many resources (or lines) reading ``source`` goes through."""
    if source.kind == "ndjson":
        return source.lines
    if source.kind == "bundle":
        return sum(source.types.values())
    return 1 if source.kind == "resource" else 0
