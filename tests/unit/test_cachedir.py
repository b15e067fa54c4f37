"""cachedir.put_entry: whole entries only, and the least recently used half dropped when over."""

from __future__ import annotations

import os

from dtrace_nb.cachedir import put_entry


def test_entries_are_written_whole_and_pruned_oldest_first(tmp_path):
    for i in range(4):
        put_entry(str(tmp_path), f"k{i}.json", b"x" * i, keep=4)
        os.utime(tmp_path / f"k{i}.json", (1000 + i, 1000 + i))
    assert len(list(tmp_path.iterdir())) == 4  # at the limit: nothing dropped
    (tmp_path / "other.pickle").write_bytes(b"kept: another suffix")
    put_entry(str(tmp_path), "k5.json", b"five", keep=4)
    # five .json entries > 4: the three oldest go, leaving keep // 2 = 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k3.json", "k5.json", "other.pickle"]
    assert (tmp_path / "k5.json").read_bytes() == b"five"
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".tmp"]


def test_an_unwritable_place_is_quietly_nothing(tmp_path):
    put_entry(str(tmp_path / "absent"), "k.json", b"x", keep=4)
    assert not (tmp_path / "absent").exists()
