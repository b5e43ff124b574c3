import platform

from infra.core.malloc import bound_fragmentation


def test_the_allocator_is_bounded_on_glibc_and_left_alone_elsewhere() -> None:
    applied = bound_fragmentation({"MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "65536"})
    assert applied == (platform.libc_ver()[0] == "glibc")
