"""Allocator settings for the long-running stages, applied before any thread starts: glibc's,
and the embedded engine's jemalloc.

The stream worker moves records of up to 512 KB (items batches) through Python. glibc serves a
freed block that size from its heap once its dynamic mmap threshold has risen past it, and
gives each thread an arena of its own; both let a process's RSS creep up with fragmentation
that is never returned. A fixed mmap threshold keeps large blocks in mmap (returned on free)
and two arenas bound the per-thread heaps. `MALLOC_ARENA_MAX` / `MALLOC_MMAP_THRESHOLD_` in
the environment still win: glibc reads them first, and this leaves them alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Mapping, MutableMapping

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed
ARENAS = 2

# chDB links its own jemalloc (symbols and environment variable prefixed `je_` / `JE_`). It keeps
# freed pages for ClickHouse's 5 s before returning them; under the sink's inserts and merges
# that is 100 to 400 MB of RSS that holds nothing, swinging with each merge. 1 s keeps the
# engine's CPU the same in a replay of the sink's inserts (0 s cost four times its system CPU).
ENGINE_MALLOC_CONF = "JE_MALLOC_CONF"
ENGINE_DIRTY_DECAY_MS = 1000


def bound_fragmentation(env: Mapping[str, str]) -> bool:
    """Set both on glibc, unless `env` (the process environment) sets them; False (and
    nothing done) on another libc."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):  # musl, macOS: no mallopt
        return False
    if "MALLOC_MMAP_THRESHOLD_" not in env:
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    if "MALLOC_ARENA_MAX" not in env:
        mallopt(M_ARENA_MAX, ARENAS)
    return True


def bound_engine_dirty_pages(env: MutableMapping[str, str]) -> None:
    """Have the embedded engine's jemalloc return freed pages after ENGINE_DIRTY_DECAY_MS
    unless `env` (the process environment) sets its options already. jemalloc reads them once,
    when chDB is loaded, so this goes before any import of chdb; without chDB it does nothing."""
    env.setdefault(ENGINE_MALLOC_CONF, f"dirty_decay_ms:{ENGINE_DIRTY_DECAY_MS}")
