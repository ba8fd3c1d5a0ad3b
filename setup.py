"""Build vmcore: our C core (strict warnings) plus thin Cython modules.

Our own C lives in src/vmcore/_native and include/vmcore and is compiled as a
static library with -Wall -Wextra -Werror; Cython's generated C is compiled
with the default flags (it is not ours to keep warning-free).

Environment:
  VMCORE_SANITIZE=1   build everything with -fsanitize=address,undefined
                      (see `make test-asan`)
  VMCORE_DEBUG=1      -O0 -g
  VMCORE_FUZZ=1       with CC=clang: our C instrumented for coverage-guided
                      fuzzing (-fsanitize=fuzzer-no-link; see fuzz/README.md)

The zygote (the sandbox process of isolation="process") is a freestanding
static executable built from src/vmcore/_native/zygote.c plus the interpreter
core, shipped in the package as vmcore/_zygote (see BuildExt).
"""
import os
import shlex
import shutil
import subprocess
import sysconfig

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SANITIZE = os.environ.get("VMCORE_SANITIZE") == "1"
DEBUG = os.environ.get("VMCORE_DEBUG") == "1" or SANITIZE

OPT = ["-O0", "-g"] if DEBUG else ["-O2"]
SAN = ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer"] if SANITIZE else []
# clang (needed for the instrumentation) also warns about unused static inline functions
FUZZ = ["-fsanitize=fuzzer-no-link", "-g", "-Wno-unused-function"] if os.environ.get("VMCORE_FUZZ") == "1" else []
STRICT = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-fno-strict-aliasing", "-fno-wrapv", *OPT, *SAN, *FUZZ]

CORE_SOURCES = [
    "src/vmcore/_native/decoder.c",
    "src/vmcore/_native/gas.c",
    "src/vmcore/_native/program.c",
    "src/vmcore/_native/interp.c",
    "src/vmcore/_native/guest_memory.c",
    "src/vmcore/_native/x64_asm.c",
    "src/vmcore/_native/compiler_x64.c",
    "src/vmcore/_native/x64_runtime.c",
    "src/vmcore/_native/module_memory.c",
    "src/vmcore/_native/host.c",
    "src/vmcore/_native/scrub.c",
]

# The zygote: no libc (raw system calls), static, not position independent,
# no stack protector (there is no TLS canary without libc); libgcc only for
# compiler helpers.  Never sanitized (no runtime to link).
ZYGOTE_SOURCES = [
    "src/vmcore/_native/zygote.c",
    "src/vmcore/_native/zygote_libc.c",
    "src/vmcore/_native/zygote_hostile.c",  # empty unless -DVMCORE_HOSTILE_ZYGOTE (tests only)
    "src/vmcore/_native/interp.c",
    "src/vmcore/_native/decoder.c",
    "src/vmcore/_native/gas.c",
    "src/vmcore/_native/x64_runtime.c",
]
ZYGOTE_FLAGS = [
    "-std=c11", "-Wall", "-Wextra", "-Werror", "-fno-strict-aliasing", *(["-O0", "-g"] if DEBUG else ["-O2"]),
    "-ffreestanding", "-nostdlib", "-static", "-fno-pie", "-no-pie", "-fno-stack-protector",
    "-fno-asynchronous-unwind-tables", "-fno-unwind-tables", "-fcf-protection=none",
    "-ffunction-sections", "-fdata-sections", "-Wl,--gc-sections", "-Wl,-z,noexecstack", "-Wl,--build-id=none",
]
ZYGOTE_OUTPUT = os.path.join("vmcore", "_zygote")
ZYGOTE_INPLACE = os.path.join("src", "vmcore", "_zygote")


class BuildExt(build_ext):
    """build_ext that also links the zygote executable into the package
    (build_lib, and the source tree for --inplace / editable installs)."""

    def run(self):
        super().run()
        self.build_zygote()

    def _zygote_paths(self):
        return os.path.join(self.build_lib, ZYGOTE_OUTPUT), ZYGOTE_INPLACE

    def build_zygote(self):
        built, inplace = self._zygote_paths()
        os.makedirs(os.path.dirname(built), exist_ok=True)
        cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
        cmd = [*cc, *ZYGOTE_FLAGS, "-Iinclude", *ZYGOTE_SOURCES, "-lgcc", "-o", built]
        print(" ".join(cmd))
        subprocess.check_call(cmd)
        if self.inplace:
            shutil.copyfile(built, inplace)
            os.chmod(inplace, 0o755)

    def get_outputs(self):
        built, inplace = self._zygote_paths()
        return [*super().get_outputs(), inplace if self.inplace else built]

    def get_output_mapping(self):
        mapping = super().get_output_mapping()
        if self.inplace:
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
        extra_link_args=SAN,
        **kw,
    )


extensions = [
    ext("vmcore.abi"),
    ext("vmcore._decoder"),
    ext("vmcore._program"),
    ext("vmcore._interp"),
    ext("vmcore._compiler"),
    ext("vmcore._process"),
]

setup(
    package_dir={"": "src"},
    cmdclass={"build_ext": BuildExt},
    libraries=[core_lib],
    ext_modules=cythonize(
        extensions,
        language_level=3,
        include_path=["src"],
        compiler_directives={"boundscheck": False, "wraparound": False, "embedsignature": True},
    ),
)
