"""The allocator setting, observed in glibc's own counters in a fresh process: after a large
block is freed, glibc's dynamic threshold would serve the next one from the heap; with the
fixed threshold it is mapped (and returned to the system when freed)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

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
