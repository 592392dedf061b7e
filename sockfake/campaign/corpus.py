"""The failure corpus: one JSON line per failure, appended by every shard, replayed
at every desk.

A line says which test failed with which seed (and, when the scheduler made choices,
the schedule it made), under which marker settings, sockfake version, commit and
Python, and the command that reproduces it. Corpora merge by concatenation: a line
is written with one ``write`` on a descriptor opened ``O_APPEND``, so processes
appending to one local file do not interleave their lines, and ``cat a b > c`` of
two corpora is a corpus. Reading skips a line it cannot use (a truncated last line
of a killed run, an older format) and says which, instead of failing the run.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CorpusEntry",
    "append_entry",
    "check_corpus_path",
    "git_commit",
    "read_corpus",
]

_GIT_TIMEOUT = 5.0  # seconds: a best-effort fact, never worth a hang


@dataclass
class CorpusEntry:
    """One failure: enough to rerun it, and to know where it was found."""

    test: str  # the pytest node id, relative to the rootdir
    seed: int
    error: str  # the failure's first line
    reproduce: str  # the shell command that reruns exactly this
    marker: dict[str, Any] = field(default_factory=dict)  # the test's marker keys
    scheduling: str = "fifo"
    schedule: list[str] | None = None  # the scheduler's choices, when it made some
    sockfake: str = ""
    commit: str | None = None
    python: str = field(default_factory=platform.python_version)
    campaign: dict[str, Any] = field(default_factory=dict)  # base seed, shard, position

    def to_line(self) -> bytes:
        # default=repr: a marker value JSON cannot hold (an exception class in
        # handler_errors) is kept as its repr, for the reader, not for replay.
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"), default=repr)
        return (text + "\n").encode()

    @classmethod
    def from_json(cls, data: Any) -> CorpusEntry:
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        test, seed = data.get("test"), data.get("seed")
        if not isinstance(test, str) or not test:
            raise ValueError("no test id")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError("no seed (a non-negative integer)")
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        known.setdefault("error", "")
        known.setdefault("reproduce", "")
        return cls(**known)


def append_entry(path: Path, entry: CorpusEntry) -> None:
    """Append ``entry`` as one line, with one ``write`` on an ``O_APPEND`` descriptor:
    the kernel puts the whole line at the end of the file, whoever else appends."""
    line = entry.to_line()
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(descriptor, line)
    finally:
        os.close(descriptor)
    if written != len(line):
        raise OSError(f"{path}: wrote {written} of {len(line)} bytes of a corpus line")


def read_corpus(path: Path) -> tuple[list[CorpusEntry], list[str]]:
    """The entries of the corpus at ``path`` (none if it does not exist yet), each
    (test, seed) once, in file order; and a note per line skipped."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], []
    entries: list[CorpusEntry] = []
    notes: list[str] = []
    seen: set[tuple[str, int]] = set()
    for number, line in enumerate(raw.splitlines(), 1):
        if not line.strip():
            continue
        try:
            entry = CorpusEntry.from_json(json.loads(line))
        except (ValueError, TypeError) as exc:
            notes.append(f"{path}:{number}: skipped, not a corpus line ({exc})")
            continue
        if (entry.test, entry.seed) not in seen:
            seen.add((entry.test, entry.seed))
            entries.append(entry)
    return entries, notes


def check_corpus_path(path: Path) -> str | None:
    """What is wrong with ``path`` as a corpus (a problem to report at start-up), or
    None: an existing file must be a readable, writable file; a new one needs a
    writable directory."""
    if path.exists():
        if not path.is_file():
            return f"{path} is not a file"
        if not os.access(path, os.R_OK | os.W_OK):
            return f"{path} is not readable and writable"
        return None
    parent = path.parent
    if not parent.is_dir():
        return f"the directory {parent} does not exist (make it, or name another file)"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"the directory {parent} is not writable, so the corpus cannot be made there"
    return None


def git_commit(directory: Path) -> str | None:
    """The commit checked out at ``directory``, or None: no git, not a repository,
    or git too slow. Best effort: a corpus line is worth writing without it."""
    git = shutil.which("git")
    if git is None:
        return None
    try:
        done = subprocess.run(
            [git, "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
            timeout=_GIT_TIMEOUT, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
