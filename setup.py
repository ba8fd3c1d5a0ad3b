"""Build vmcore: our C core (strict warnings) plus one thin Cython extension.

Our own C lives in src/vmcore/_native and include/vmcore and is compiled as a
static library with -Wall -Wextra (and -Werror in development and CI builds,
VMCORE_WERROR=1: an end user's newer compiler may warn about something new,
which must not break `pip install`); Cython's generated C is compiled with
the default flags (it is not ours to keep warning-free).  Extension modules
are linked without debug information (-Wl,-S) unless VMCORE_DEBUG/SANITIZE.

Environment:
  VMCORE_WERROR=1     warnings in our C are errors (.ci/run, the Makefile and
                      the development install instructions set it)
  VMCORE_SANITIZE=1   build everything with -fsanitize=address,undefined
                      (see `make test-asan`)
  VMCORE_DEBUG=1      -O0 -g
  VMCORE_FUZZ=1       with CC=clang: our C instrumented for coverage-guided
                      fuzzing (-fsanitize=fuzzer-no-link; see fuzz/README.md)

The zygote (the sandbox process of isolation="process") is a freestanding
static executable built from src/vmcore/_native/zygote.c plus the interpreter
core, shipped in the package as vmcore/_zygote (see BuildExt).  It is x86-64
only (raw x86-64 system calls): on other targets (aarch64) it is not built,
and vmcore runs guests with the inline interpreter (isolation="process" and
backend="compiler" raise SandboxError saying why).
"""
import functools
import glob
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext

SANITIZE = os.environ.get("VMCORE_SANITIZE") == "1"
DEBUG = os.environ.get("VMCORE_DEBUG") == "1" or SANITIZE

OPT = ["-O0", "-g"] if DEBUG else ["-O2"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"] if SANITIZE else []
# clang (needed for the instrumentation) also warns about unused static inline functions
FUZZ = ["-fsanitize=fuzzer-no-link", "-g", "-Wno-unused-function"] if os.environ.get("VMCORE_FUZZ") == "1" else []
WERROR = ["-Werror"] if os.environ.get("VMCORE_WERROR") == "1" else []
# Extension modules without debug information (the wheel ships these)
STRIP = [] if DEBUG or os.environ.get("VMCORE_FUZZ") == "1" else ["-Wl,-S"]
STRICT = ["-std=c11", "-Wall", "-Wextra", *WERROR, "-fPIC", "-fno-strict-aliasing", "-fno-wrapv", *OPT, *SAN, *FUZZ]

CORE_SOURCES = [
    "src/vmcore/_native/decoder.c",
    "src/vmcore/_native/gas.c",
    "src/vmcore/_native/program.c",
    "src/vmcore/_native/interp.c",
    "src/vmcore/_native/interp_build.c",
    "src/vmcore/_native/memory.c",
    "src/vmcore/_native/guest_memory.c",
    "src/vmcore/_native/x64_asm.c",
    "src/vmcore/_native/x64/routines.c",
    "src/vmcore/_native/x64/stubs.c",
    "src/vmcore/_native/x64/ops.c",
    "src/vmcore/_native/x64/select.c",
    "src/vmcore/_native/x64/bounds.c",
    "src/vmcore/_native/x64/prefault.c",
    "src/vmcore/_native/x64/threads.c",
    "src/vmcore/_native/x64/scratch.c",
    "src/vmcore/_native/x64/compile.c",
    "src/vmcore/_native/x64/host_entry.c",
    "src/vmcore/_native/x64_runtime.c",
    "src/vmcore/_native/module_memory.c",
    "src/vmcore/_native/host.c",
    "src/vmcore/_native/host_cpu.c",
    "src/vmcore/_native/host_handshake.c",
    "src/vmcore/_native/sigint.c",
    "src/vmcore/_native/scrub.c",
    "src/vmcore/_native/snapshot.c",
]

# The zygote: no libc (raw system calls), static, not position independent,
# no stack protector (there is no TLS canary without libc); libgcc only for
# compiler helpers.  Never sanitized (no runtime to link).
ZYGOTE_SOURCES = [
    "src/vmcore/_native/zygote.c",
    "src/vmcore/_native/zygote_confine.c",
    "src/vmcore/_native/zygote_libc.c",
    "src/vmcore/_native/zygote_hostile.c",  # empty unless -DVMCORE_HOSTILE_ZYGOTE (tests only)
    "src/vmcore/_native/interp.c",
    "src/vmcore/_native/interp_build.c",
    "src/vmcore/_native/memory.c",
    "src/vmcore/_native/decoder.c",
    "src/vmcore/_native/gas.c",
    "src/vmcore/_native/x64_runtime.c",
]
ZYGOTE_FLAGS = [
    "-std=c11", "-Wall", "-Wextra", *WERROR, "-fno-strict-aliasing", *(["-O0", "-g"] if DEBUG else ["-O2"]),
    "-ffreestanding", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fcf-protection=none",
    "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-Wl,-z,noexecstack", "-Wl,--build-id=none",
]
ZYGOTE_OUTPUT = os.path.join("vmcore", "_zygote")
ZYGOTE_INPLACE = os.path.join("src", "vmcore", "_zygote")


def c_compiler():
    """The C compiler command (CC, else the one Python was built with)."""
    return shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")


def require_c_compiler():
    """One clear sentence instead of a traceback when there is no compiler."""
    cc = c_compiler()
    if not cc or shutil.which(cc[0]) is None:
        name = cc[0] if cc else "cc"
        sys.exit(f"error: building vmcore from source needs a C compiler, and {name!r} was not found "
                 "(install one, e.g. `apt-get install gcc`, or set CC; prebuilt wheels need none).")


@functools.lru_cache(maxsize=None)
def targets_x86_64():
    """Whether the compiler builds for x86-64 (the zygote is x86-64 only)."""
    try:
        machine = subprocess.run([*c_compiler(), "-dumpmachine"], check=True, capture_output=True,
                                 text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        machine = sysconfig.get_platform()
    return machine.startswith(("x86_64", "amd64")) or machine.endswith(("x86_64", "amd64"))


class BuildClib(build_clib):
    def run(self):
        if self.libraries:
            require_c_compiler()
        super().run()


class BuildExt(build_ext):
    """build_ext that also links the zygote executable into the package
    (build_lib, and the source tree for --inplace / editable installs)."""

    def run(self):
        require_c_compiler()
        super().run()
        if targets_x86_64():
            self.build_zygote()
        else:
            print("vmcore: not an x86-64 target: the zygote (isolation='process') is not built")

    def _zygote_paths(self):
        return os.path.join(self.build_lib, ZYGOTE_OUTPUT), ZYGOTE_INPLACE

    def build_zygote(self):
        built, inplace = self._zygote_paths()
        os.makedirs(os.path.dirname(built), exist_ok=True)
        cmd = [*c_compiler(), *ZYGOTE_FLAGS, "-Iinclude", *ZYGOTE_SOURCES, "-lgcc", "-o", built]
        print(" ".join(cmd))
        subprocess.check_call(cmd)
        if self.inplace:
            shutil.copyfile(built, inplace)
            os.chmod(inplace, 0o755)

    def get_outputs(self):
        outputs = super().get_outputs()
        if not targets_x86_64():
            return outputs
        built, inplace = self._zygote_paths()
        return [*outputs, inplace if self.inplace else built]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        if self.inplace and targets_x86_64():
            built, inplace = self._zygote_paths()
            mapping[built] = inplace
        return mapping

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
        ["src/" + name.replace(".", "/") + ".pyx"],
        include_dirs=["include"],
        libraries=["vmcore_core"],
        extra_compile_args=[*OPT, *SAN, "-Wno-unused-function"],
        extra_link_args=[*SAN, *STRIP],
        **kw,
    )


# One extension (vmcore/_engine.pyx includes vmcore/engine/*.pyx): the C
# core is linked once, so one process has one set of decoder tables and
# one recompiler scratch pool.
extensions = [ext("vmcore._engine", depends=["src/vmcore/_engine.pxd", *glob.glob("src/vmcore/engine/*.pyx")])]

setup(
    package_dir={"": "src"},
    cmdclass={"build_clib": BuildClib, "build_ext": BuildExt},
    libraries=[core_lib],
    ext_modules=cythonize(
        extensions,
        language_level=3,
        include_path=["src"],
        compiler_directives={"boundscheck": False, "wraparound": False, "embedsignature": True},
    ),
)
