"""Build vmcore: our C core (strict warnings) plus thin Cython modules.

Our own C lives in vmcore/_native and include/vmcore and is compiled as a
static library with -Wall -Wextra -Werror; Cython's generated C is compiled
with the default flags (it is not ours to keep warning-free).

Environment:
  VMCORE_SANITIZE=1   build everything with -fsanitize=address,undefined
                      (see `make test-asan`)
  VMCORE_DEBUG=1      -O0 -g
"""
import os

from Cython.Build import cythonize
from setuptools import Extension, setup

SANITIZE = os.environ.get("VMCORE_SANITIZE") == "1"
DEBUG = os.environ.get("VMCORE_DEBUG") == "1" or SANITIZE

OPT = ["-O0", "-g"] if DEBUG else ["-O2"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"] if SANITIZE else []
STRICT = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-fno-strict-aliasing", "-fno-wrapv", *OPT, *SAN]

CORE_SOURCES = [
    "vmcore/_native/decoder.c",
    "vmcore/_native/program.c",
    "vmcore/_native/interp.c",
    "vmcore/_native/guest_memory.c",
]

core_lib = (
    "vmcore_core",
    {
        "sources": CORE_SOURCES,
        "include_dirs": ["include"],
        "cflags": STRICT,
    },
)


def ext(name, **kw):
    return Extension(
        name,
        [name.replace(".", "/") + ".pyx"],
        include_dirs=["include"],
        libraries=["vmcore_core"],
        extra_compile_args=[*OPT, *SAN, "-Wno-unused-function"],
        extra_link_args=SAN,
        **kw,
    )


extensions = [
    ext("vmcore.abi"),
    ext("vmcore._decoder"),
    ext("vmcore._program"),
    ext("vmcore._interp"),
]

setup(
    libraries=[core_lib],
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "embedsignature": True},
    ),
)
