"""cli.progress: shown on a terminal, absent from pipes and logs."""

from __future__ import annotations

import io

import pytest

from cli.progress import counted_lines, input_size, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_with_stderr(stream: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.delenv("TERM", raising=False)
    lines = [b"one\n", b"two\n", b"three\n"]
    with progress("run events.jsonl", total=14, in_bytes=True) as advance:
        return list(counted_lines(lines, advance))


def test_a_terminal_sees_the_work_done(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = Terminal()
    assert run_with_stderr(terminal, monkeypatch) == [b"one\n", b"two\n", b"three\n"]
    assert "run events.jsonl" in terminal.getvalue()


def test_a_pipe_gets_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    pipe = io.StringIO()
    assert run_with_stderr(pipe, monkeypatch) == [b"one\n", b"two\n", b"three\n"]
    assert pipe.getvalue() == ""


def test_the_bar_ends_where_a_regular_file_ends() -> None:
    source = io.BytesIO(b"0123456789")
    source.read(4)
    assert input_size(source) == 6
    assert source.tell() == 4
