#!/usr/bin/env bash
# The Python test suites on Linux aarch64 CPython under qemu-user
# (`make test-aarch64-python`; CI's aarch64 step).  Run from the repository
# root with the host's Python (it runs Cython and setup.py).
#
# Everything lives in $DIR (default build/aarch64-python; nothing is cached
# elsewhere):
#   apt-*/ private apt states (arm64 bookworm, amd64 trixie)
#   usr/bin/qemu-aarch64  trixie's qemu-user (see qemu_user)
#   root/  Debian bookworm's arm64 python3.11 and its libraries, extracted
#          from the .debs (dpkg -x; no chroot, no maintainer scripts)
#   site/  the test requirements as aarch64 wheels from PyPI (pip --target)
#   tree/  a copy of the checkout, vmcore cross-built in place in it
#          (aarch64-linux-gnu-gcc, the arm64 sysconfig data and headers), so
#          the host's own in-place build is never mixed with it
# then `qemu-aarch64 -L root root/usr/bin/python3.11 -m pytest` in tree/.
# Arguments are passed to pytest (default: the suites listed below).
set -euo pipefail
DIR=${AARCH64_PYTHON_DIR:-build/aarch64-python}
HOST_PYTHON=${PYTHON:-python}
PY=python3.11
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
ROOTFS=$DIR/root
QEMU=$DIR/usr/bin/qemu-aarch64
TREE=$DIR/tree

# apt-get with a private state in $DIR/apt-ARCH (the host's dpkg is
# untouched): private_apt ARCH "SOURCES LINES" APT-ARGS...
private_apt() {
    local arch=$1 sources=$2 apt=$DIR/apt-$1
    shift 2
    mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial"
    [ -f "$apt/state/status" ] || : > "$apt/state/status"  # nothing installed: every dependency is fetched
    echo "$sources" > "$apt/sources.list"
    apt-get -o APT::Architecture="$arch" -o APT::Architectures::="$arch" \
        -o Dir::State="$apt/state" -o Dir::State::status="$apt/state/status" -o Dir::Cache="$apt/cache" \
        -o Dir::Etc::SourceList="$apt/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o Debug::NoLocking=1 "$@"
}

arm64_rootfs() {
    [ -x "$ROOTFS/usr/bin/$PY" ] && return
    local key=/usr/share/keyrings/debian-archive-keyring.gpg
    local sources="deb [arch=arm64 signed-by=$key] $MIRROR bookworm main
deb [arch=arm64 signed-by=$key] $MIRROR bookworm-updates main
deb [arch=arm64 signed-by=$key] $SECURITY_MIRROR bookworm-security main"
    private_apt arm64 "$sources" update -qq
    private_apt arm64 "$sources" install -y -qq --download-only --no-install-recommends "$PY" "lib$PY-dev" >/dev/null
    mkdir -p "$ROOTFS"
    local deb
    for deb in "$DIR"/apt-arm64/cache/archives/*.deb; do dpkg -x "$deb" "$ROOTFS"; done
}

# bookworm's qemu-user (7.2) ignores the guest's madvise(MADV_DONTNEED),
# which the inline backend relies on to zero and release guest memory (the
# suites then grow to tens of GB and see stale pages); trixie's (10.0)
# honours it.  Its binaries are static: extracted, nothing installed.
qemu_user() {
    [ -x "$QEMU" ] && return
    local key=/usr/share/keyrings/debian-archive-keyring.gpg apt=$DIR/apt-amd64
    private_apt amd64 "deb [arch=amd64 signed-by=$key] $MIRROR trixie main" update -qq
    (cd "$apt" && private_apt amd64 "deb [arch=amd64 signed-by=$key] $MIRROR trixie main" download -qq qemu-user)
    dpkg-deb --fsys-tarfile "$apt"/qemu-user_*.deb | tar -x -C "$DIR" ./usr/bin/qemu-aarch64
}

test_requirements() {
    [ -d "$DIR/site/pytest" ] && return
    "$HOST_PYTHON" .ci/project.py extra test | "$HOST_PYTHON" -m pip install -q --target "$DIR/site" \
        --platform manylinux2014_aarch64 --implementation cp --python-version 3.11 --only-binary=:all: -r /dev/stdin
}

# setup.py run by the host Python with the arm64 configuration: sysconfig
# reads Debian's arm64 _sysconfigdata (CC=aarch64-linux-gnu-gcc, the
# .cpython-311-aarch64-linux-gnu.so suffix) and the headers are the arm64 ones.
cross_build() {
    rm -rf "$TREE" && mkdir -p "$TREE"
    git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf - | tar -xf - -C "$TREE"
    local sysconfig=$DIR/sysconfig name=_sysconfigdata__linux_aarch64-linux-gnu
    mkdir -p "$sysconfig"
    cp "$ROOTFS/usr/lib/$PY/$name.py" "$sysconfig/"
    (cd "$TREE" && _PYTHON_HOST_PLATFORM=linux-aarch64 _PYTHON_SYSCONFIGDATA_NAME=$name PYTHONPATH=$sysconfig \
        "$HOST_PYTHON" setup.py -q build_clib build_ext --inplace \
        --include-dirs "$ROOTFS/usr/include/$PY:$ROOTFS/usr/include")
}

# The suites that run on the inline interpreter; the zygote's and the
# recompiler's own suites skip themselves off x86-64 (and are not listed).
# The fuzz targets' own suite shows they skip the refused configurations.
# (test_loader_fuzz.py passes too but adds over two minutes: PYTEST_ARGS.)
DEFAULT_TESTS=(
    tests/test_abi.py tests/test_aio.py tests/test_api.py tests/test_asm.py tests/test_decoder.py
    tests/test_disasm.py tests/test_error_pickle.py tests/test_fuzz.py tests/test_gas.py
    tests/test_hostile_api.py tests/test_interpreter.py tests/test_jam.py tests/test_memory_map.py
    tests/test_native_vectors.py tests/test_program.py tests/test_reference.py tests/test_sandbox.py
    tests/test_sigint.py tests/test_tools_api.py tests/test_tools_entry_points.py
)

run_tests() {
    [ $# -gt 0 ] || set -- "${DEFAULT_TESTS[@]}"
    (cd "$TREE" && PYTHONPATH=$TREE/src:$DIR/site PYTHONDONTWRITEBYTECODE=1 \
        "$QEMU" -L "$ROOTFS" "$ROOTFS/usr/bin/$PY" -c \
        'import platform, sys; assert platform.machine() == "aarch64", platform.machine(); print(sys.version)' &&
     PYTHONPATH=$TREE/src:$DIR/site PYTHONDONTWRITEBYTECODE=1 \
        "$QEMU" -L "$ROOTFS" "$ROOTFS/usr/bin/$PY" -m pytest -q -p no:cacheprovider "$@")
}

step() {
    local start=$SECONDS
    "$@"
    echo "aarch64-python: $1 done in $((SECONDS - start)) s"
}

step arm64_rootfs
step qemu_user
step test_requirements
step cross_build
step run_tests "$@"
