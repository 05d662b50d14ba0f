"""Pin OpenBLAS's kernels, so that the same params give the same bytes on another CPU.

numpy and scipy ship OpenBLAS, which picks its matrix kernels from the CPU it finds when it loads. Two
machines with the same packages can therefore round differently: the room bank built on an AMD EPYC
virtual machine (whose environment named the Haswell kernels) differed in the last bits of its RIRs from the
one built on an Intel machine (SkylakeX kernels), and every query set, model and figure downstream
followed. Setting `OPENBLAS_CORETYPE` before numpy loads makes OpenBLAS use the kernels named there
instead: the widest of the two families most x86-64 CPUs of the last decade share, chosen from the CPU's
flags (AVX-512 -> SkylakeX, else AVX2 with FMA -> Haswell). Machines in the same family then give the same
bytes; a machine in another family (no AVX-512, or not x86-64) still runs, and may differ in the last
bits.

The pin replaces an `OPENBLAS_CORETYPE` the environment already has (some machines set one for every
process: that is how the AMD machine above came to use Haswell kernels). To choose yourself, set
`RESONANCE_OPENBLAS_CORETYPE` to an OpenBLAS core name, or to `inherit` to keep the environment's value.

Standard library only: it runs before numpy is imported.
"""

from __future__ import annotations

import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

ENV_VAR = "OPENBLAS_CORETYPE"
OVERRIDE_VAR = "RESONANCE_OPENBLAS_CORETYPE"
INHERIT = "inherit"
LOADERS = frozenset({"numpy", "scipy"})  # the packages whose import loads OpenBLAS
# OpenBLAS core name -> the CPU flags (as /proc/cpuinfo spells them) its kernels need; widest first.
CORE_FLAGS: dict[str, frozenset[str]] = {
    "SkylakeX": frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl", "avx2", "fma"}),
    "Haswell": frozenset({"avx2", "fma"}),
}


def _first_cpu_field(name: str, cpuinfo: Path) -> str | None:
    """The value of field `name` for the first CPU in `cpuinfo` (None where there is no such file or field)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == name:
            return value.strip()
    return None


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The flags of the first CPU in `cpuinfo` (empty where there is no such file, e.g. macOS)."""
    return frozenset((_first_cpu_field("flags", cpuinfo) or "").split())


def openblas_core(flags: frozenset[str]) -> str | None:
    """The widest OpenBLAS core family whose flags are all in `flags`, or None (leave OpenBLAS to choose)."""
    for core, needs in CORE_FLAGS.items():
        if needs <= flags:
            return core
    return None


def pin_blas_kernels(environ: MutableMapping[str, str] | None = None,
                     flags: frozenset[str] | None = None) -> str | None:
    """Set `OPENBLAS_CORETYPE` in `environ` (default: this process). Returns the value in force (None: unset).

    `RESONANCE_OPENBLAS_CORETYPE` decides when set (a core name, or `inherit`); otherwise the CPU's family
    (`openblas_core`), replacing any value the environment had. OpenBLAS reads the variable once, when numpy
    or scipy loads it: in a process that has loaded them already (a test calling the CLI's `main`, say), this
    process's kernels are set, so its environment is left alone and the processes it starts match it.
    """
    if environ is None and LOADERS & sys.modules.keys():
        return os.environ.get(ENV_VAR) or None
    env = os.environ if environ is None else environ
    chosen = env.get(OVERRIDE_VAR, "").strip()
    if chosen.lower() == INHERIT:
        return env.get(ENV_VAR) or None
    core = chosen or openblas_core(cpu_flags() if flags is None else flags)
    if core is None:
        return env.get(ENV_VAR) or None
    env[ENV_VAR] = core
    return core


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's model name as /proc/cpuinfo gives it (None where unknown)."""
    return _first_cpu_field("model name", cpuinfo) or None


def runtime() -> dict[str, str | None]:
    """What a run's numbers hang on besides code, data and params: {"cpu", "openblas_coretype"}.

    The core type is the one the CLI pins (or would pin) in this environment; nothing is changed here."""
    return {"cpu": cpu_model(), "openblas_coretype": pin_blas_kernels(dict(os.environ))}
