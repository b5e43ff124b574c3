"""The allocator settings, each observed in a fresh process: glibc's in its own counters (after
a large block is freed, glibc's dynamic threshold would serve the next one from the heap; with
the fixed threshold it is mapped, and returned to the system when freed), the embedded engine's
jemalloc in its own report."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from infra.core.malloc import ENGINE_DIRTY_DECAY_MS, ENGINE_MALLOC_CONF, bound_engine_dirty_pages

PROBE = """
import ctypes, ctypes.util, sys
from infra.core.malloc import bound_fragmentation

NAMES = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in NAMES.split()]

libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "bound":
    assert bound_fragmentation({})
size = 200 * 1024  # above glibc's starting threshold (128 KB)
libc.free(libc.malloc(size))  # freeing a mapped block raises the dynamic threshold past it
before = libc.mallinfo2().hblks
block = libc.malloc(size)
print(libc.mallinfo2().hblks - before)
libc.free(block)
"""


def mapped_blocks(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_large_blocks_stay_mapped_with_the_fixed_threshold() -> None:
    assert mapped_blocks("default") == 0  # glibc's dynamic threshold: the heap serves it
    assert mapped_blocks("bound") == 1  # fixed at 128 KB: mapped, returned on free


def test_the_environment_wins_and_other_libcs_are_left_alone() -> None:
    from infra.core.malloc import bound_fragmentation

    applied = bound_fragmentation({"MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "65536"})
    assert applied == (platform.libc_ver()[0] == "glibc")


ENGINE_PROBE = """
import os, re, sys, tempfile
from infra.core.malloc import bound_engine_dirty_pages
if sys.argv[1] == "bound":
    bound_engine_dirty_pages(os.environ)
from infra.core.clickhouse import connect
with tempfile.TemporaryDirectory() as tmp:
    stats = connect(f"chdb://{tmp}").query("SELECT * FROM system.jemalloc_stats").result_rows[0][0]
print(re.search(r"opt.dirty_decay_ms: (\\d+)", stats).group(1))
"""


def engine_dirty_decay_ms(mode: str, **env: str) -> int:
    """jemalloc's own report, from the embedded engine in a fresh process."""
    base = {k: v for k, v in os.environ.items() if k != ENGINE_MALLOC_CONF}
    done = subprocess.run(
        [sys.executable, "-c", ENGINE_PROBE, mode],
        capture_output=True, text=True, check=True, env={**base, **env},
    )  # fmt: skip
    return int(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
def test_the_embedded_engine_returns_freed_pages_after_a_second() -> None:
    assert engine_dirty_decay_ms("default") == 5000  # ClickHouse's own
    assert engine_dirty_decay_ms("bound") == ENGINE_DIRTY_DECAY_MS
    # An operator's options win (jemalloc reads them once, at load).
    assert engine_dirty_decay_ms("bound", JE_MALLOC_CONF="dirty_decay_ms:3000") == 3000


def test_the_engine_setting_leaves_an_operators_choice_alone() -> None:
    env = {ENGINE_MALLOC_CONF: "background_thread:false"}
    bound_engine_dirty_pages(env)
    assert env == {ENGINE_MALLOC_CONF: "background_thread:false"}
    env: dict[str, str] = {}
    bound_engine_dirty_pages(env)
    assert env == {ENGINE_MALLOC_CONF: f"dirty_decay_ms:{ENGINE_DIRTY_DECAY_MS}"}
