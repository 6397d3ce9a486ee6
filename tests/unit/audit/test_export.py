"""The export directory never loses or overwrites a checkpoint; the outbox keeps the latest."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.checkpoint import Checkpoint
from audit.export import CheckpointExports, DirectoryExport
from audit.keys import Signer

SIGNER = Signer(Ed25519PrivateKey.generate())


def _at(seq: int, stream: str = "ai.access:0", chain: str = "ab") -> Checkpoint:
    return Checkpoint.sign(SIGNER, stream, seq, chain * 32, "rev")


def test_checkpoints_are_files_per_stream_read_back_in_order(tmp_path: Path) -> None:
    export = DirectoryExport(tmp_path)
    for checkpoint in (_at(20), _at(10), _at(5, "weird/topic:1")):
        export.write(checkpoint)
    assert [(c.stream, c.checkpoint.seq) for c in export.read() if c.checkpoint] == [
        ("ai.access:0", 10),
        ("ai.access:0", 20),
        ("weird/topic:1", 5),
    ]
    assert [c.checkpoint.seq for c in export.read("weird/topic:1") if c.checkpoint] == [5]


def test_a_conflicting_checkpoint_for_the_same_seq_is_kept_beside_the_first(tmp_path: Path) -> None:
    export = DirectoryExport(tmp_path)
    export.write(_at(10, chain="ab"))
    export.write(_at(10, chain="cd"))
    export.write(_at(10, chain="ab"))  # the same statement again: no new file, no overwrite
    assert sorted(c.checkpoint.chain_hash[:2] for c in export.read() if c.checkpoint) == ["ab", "cd"]


def test_an_unreadable_file_is_reported_not_skipped(tmp_path: Path) -> None:
    export = DirectoryExport(tmp_path)
    export.write(_at(10))
    (export.path_of(_at(10)).parent / "00000000000000000011-x.json").write_text("{not json")
    copies = list(export.read())
    assert [c.error != "" for c in copies] == [False, True]
    assert copies[1].stream == "ai.access:0"


def test_a_failing_directory_is_retried_with_the_next_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "export"
    blocked.write_text("a file where the directory should be")
    exports = CheckpointExports(DirectoryExport(blocked))
    exports.publish([_at(10)])
    assert exports.unwritten == 1
    assert "exporting checkpoint ai.access:0 seq 10" in caplog.text
    blocked.unlink()
    exports.publish([_at(20)])
    assert exports.unwritten == 0
    assert [c.checkpoint.seq for c in DirectoryExport(blocked).read() if c.checkpoint] == [10, 20]


def test_the_outbox_holds_the_latest_checkpoint_per_stream(tmp_path: Path) -> None:
    exports = CheckpointExports(DirectoryExport(tmp_path))
    exports.publish([_at(10), _at(20), _at(3, "ai.access:1")])
    taken = exports.take_outbox()
    assert sorted((c.stream, c.seq) for c in taken) == [("ai.access:0", 20), ("ai.access:1", 3)]
    assert exports.take_outbox() == []
    exports.publish([_at(30)])
    exports.return_to_outbox(taken)  # a failed publish of older ones must not hide the newer
    assert sorted((c.stream, c.seq) for c in exports.take_outbox()) == [
        ("ai.access:0", 30),
        ("ai.access:1", 3),
    ]
