"""pdeflow.allocator: freed memory kept for reuse, so large tensors made again fault no new pages."""
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

import pdeflow

SRC = str(Path(pdeflow.__file__).resolve().parents[1])
GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"

# A chain of 64 MB tensors (above glibc's largest mmap threshold: by default each one a fresh mapping) made and
# freed as an iterative solver does, twelve times in a fresh process: the page faults of the last ten.
REFAULTS = """
import json, resource, sys, torch
if sys.argv[1] == "retain":
    from pdeflow.allocator import retain_freed_memory
    assert retain_freed_memory()
elif sys.argv[1] == "cli":
    from pdeflow.cli import main
    assert main(["--version"]) == 0
def chain():
    x = torch.ones(16 * 2**20)
    for _ in range(5):
        x = (x * 2) + x
for _ in range(2):
    chain()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    chain()
print(json.dumps(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before))
"""


def _refaults(mode: str) -> int:
    env = dict(os.environ, PYTHONPATH=SRC)
    out = subprocess.run([sys.executable, "-c", REFAULTS, mode], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow   # repeated large allocations; the command's retention test stays in make test
@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_retained_memory_is_reused_without_page_faults():
    fresh = 10 * 11 * 2**26 // 4096          # ten chains of eleven 64 MB tensors, in 4 KiB pages
    assert _refaults("default") > fresh // 2
    assert _refaults("retain") < fresh // 10


@pytest.mark.slow   # a command run in a fresh interpreter
@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_the_command_retains_freed_memory():
    assert _refaults("cli") < 10 * 11 * 2**26 // 4096 // 10


def test_retain_freed_memory_says_whether_it_applied():
    from pdeflow.allocator import retain_freed_memory
    code = "from pdeflow.allocator import retain_freed_memory as r; print(r())"
    out = subprocess.run([sys.executable, "-c", code], env=dict(os.environ, PYTHONPATH=SRC),
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(GLIBC)
    assert callable(retain_freed_memory)


# Every other one of 400 blocks of 64 KiB (below glibc's mmap threshold: in the heap) freed: the heap cannot
# shrink past the blocks still live, and keeps the freed ones resident until they are released.
FRAGMENTED = """
import ctypes, json, sys
from pdeflow.allocator import release_free_memory
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
blocks = [libc.malloc(65536) for _ in range(400)]
for b in blocks:
    ctypes.memset(b, 1, 65536)
for b in blocks[::2]:
    libc.free(b)
before = rss()
released = release_free_memory()
print(json.dumps([released, before - rss()]))
"""


@pytest.mark.skipif(not GLIBC, reason="glibc's malloc only")
def test_released_memory_leaves_the_resident_set():
    out = subprocess.run([sys.executable, "-c", FRAGMENTED], env=dict(os.environ, PYTHONPATH=SRC),
                         capture_output=True, text=True, check=True)
    released, dropped = json.loads(out.stdout.strip().splitlines()[-1])
    assert released
    assert dropped > 0.5 * 200 * 65536       # most of the 200 freed blocks left the resident set
