"""vmcore's engine: one extension over the C core (linked once: one set of
decoder tables, one recompiler scratch pool per process).  The parts, each
an include of vmcore/engine/:

  abi.pyx       the ABI as compiled (re-exported by vmcore.abi)
  decoder.pyx   instruction-set tables and the C decoder, for Python tools
  program.pyx   program containers parsed in C
  module_setup.pyx  what every module constructor shares (gas model, block costs)
  guest.pyx     Guest: calls, the hostcall loop, registers, memory, scrub
  interp.pyx    threaded code and Instance, the inline interpreter
  compiler.pyx  the x86-64 recompiler (compiling only; never run here)
  process.pyx   shared modules, zygotes and Process, the process sandbox
  snapshot.pyx  guest memory snapshots and zero-copy views (GuestBuffer)
  sandbox_core.pyx  SandboxCore: Sandbox.call, down to C and back

No policy: vmcore.sandbox and vmcore.backends decide what to map, when to
stop and how to report it."""
from cpython.bytes cimport PyBytes_FromStringAndSize, PyBytes_AS_STRING
from cpython cimport array
from libc.stdint cimport uint8_t, uint32_t, uint64_t, int64_t, int32_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memset
from libc.errno cimport errno

cdef extern from "vmcore/vmctx.h":
    enum:
        VM_ADDR_NATIVE_CODE
from vmcore.includes.abi cimport *
from vmcore.includes.gas cimport *
from vmcore.includes.decoder cimport *
from vmcore.includes.interp cimport *
from vmcore.includes.program cimport *
from vmcore.includes.compiler cimport *
from vmcore.includes.host cimport *
from vmcore.includes.scrub cimport vm_guest_span, vm_scrub_spans, vm_state_fresh, vm_ctx_fresh
from vmcore.includes.snapshot cimport *
from vmcore.includes.sigint cimport vm_sigint_arm, vm_sigint_disarm, vm_sigint_take
from cpython.exc cimport PyErr_CheckSignals
from cpython.pythread cimport PyThread_get_thread_ident

import array as _array_module
import os
import time

from vmcore.errors import SandboxBusy, SandboxError, Timeout
from vmcore.watchdog import deadline

vm_decoder_init()

# Ctrl-C reaches a running guest only in the thread Python runs signal
# handlers in (vmcore/sigint.h).
import threading as _threading
cdef unsigned long _MAIN_THREAD = _threading.main_thread().ident


cdef inline bint _in_main_thread():
    return PyThread_get_thread_ident() == _MAIN_THREAD

include "engine/abi.pyx"
include "engine/module_setup.pyx"
include "engine/decoder.pyx"
include "engine/program.pyx"
include "engine/guest.pyx"
include "engine/interp.pyx"
include "engine/compiler.pyx"
include "engine/process.pyx"
include "engine/snapshot.pyx"
include "engine/sandbox_core.pyx"
