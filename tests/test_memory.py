"""``core.memory.release``: the heap pages a stage freed go back to the system (glibc)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

# a fresh interpreter, so that the heap holds only what the script does: 300 MB in 100-kB blocks
# (below glibc's mmap threshold, so they live in the heap), all freed but the last, which pins the
# top of the heap so that glibc's own trimming cannot give anything back
SCRIPT = textwrap.dedent(
    """
    import json, psutil
    from core import memory
    proc = psutil.Process()
    base = proc.memory_info().rss
    blocks = [bytearray(100_000) for _ in range(3000)]
    for b in blocks:
        b[::4096] = b"x" * len(b[::4096])  # touch every page
    last = blocks[-1]
    del blocks
    before = proc.memory_info().rss
    ran = memory.release()
    after = proc.memory_info().rss
    print(json.dumps({"base": base, "before": before, "after": after, "ran": ran, "kept": len(last)}))
    """
)


def test_release_gives_freed_heap_pages_back() -> None:
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    mb = 2**20
    assert r["ran"] is True
    assert r["before"] - r["base"] > 250 * mb, r  # the freed blocks still count: glibc kept them
    assert r["before"] - r["after"] > 250 * mb, r  # and release() handed them back
    assert r["kept"] == 100_000


def test_release_without_malloc_trim_only_collects(monkeypatch: pytest.MonkeyPatch) -> None:
    from core import memory

    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.release() is False
