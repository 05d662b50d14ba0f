"""OpenBLAS kernel pinning: the family follows the CPU's flags, replaces a machine-wide value, and the
OpenBLAS that numpy and scipy load really runs the pinned kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from resonance.kernels import (
    CORE_FLAGS,
    ENV_VAR,
    OVERRIDE_VAR,
    cpu_flags,
    cpu_model,
    openblas_core,
    pin_blas_kernels,
    runtime,
)

AVX512 = CORE_FLAGS["SkylakeX"] | {"sse4_2", "avx"}
AVX2 = frozenset({"sse4_2", "avx", "avx2", "fma"})
OLD = frozenset({"sse2", "sse4_2"})


def test_the_widest_family_the_flags_allow() -> None:
    assert openblas_core(AVX512) == "SkylakeX"
    assert openblas_core(AVX2) == "Haswell"
    assert openblas_core(AVX512 - {"avx512bw"}) == "Haswell"  # one missing AVX-512 part: not SkylakeX
    assert openblas_core(OLD) is None
    assert openblas_core(frozenset()) is None


def test_cpu_flags_read_the_first_cpu(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 avx2 fma\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(info) == {"fpu", "sse2", "avx2", "fma"}
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_the_pin_replaces_a_machine_wide_value_unless_told_otherwise() -> None:
    env = {ENV_VAR: "Haswell"}
    assert pin_blas_kernels(env, AVX512) == "SkylakeX" and env[ENV_VAR] == "SkylakeX"
    env = {ENV_VAR: "Haswell", OVERRIDE_VAR: "inherit"}
    assert pin_blas_kernels(env, AVX512) == "Haswell" and env[ENV_VAR] == "Haswell"
    env = {ENV_VAR: "Haswell", OVERRIDE_VAR: "Zen"}
    assert pin_blas_kernels(env, AVX512) == "Zen" and env[ENV_VAR] == "Zen"
    env = {}
    assert pin_blas_kernels(env, OLD) is None and env == {}  # no known family: OpenBLAS chooses
    env = {ENV_VAR: "Nehalem"}
    assert pin_blas_kernels(env, OLD) == "Nehalem"  # ... and a value already there stays


def _loaded_architectures(env: dict[str, str], pin_with_the_cli: bool) -> list[str]:
    """Run a fresh interpreter that pins (through the CLI's entry point or the function), then loads numpy and
    scipy's BLAS; return the kernel family each loaded OpenBLAS reports."""
    pin = ("from resonance.cli import main; main([])" if pin_with_the_cli
           else "from resonance.kernels import pin_blas_kernels; pin_blas_kernels()")
    code = (f"import contextlib, io, json\nwith contextlib.redirect_stdout(io.StringIO()):\n    {pin}\n"
            "import numpy, scipy.linalg, threadpoolctl\n"
            "print(json.dumps([i.get('architecture') for i in threadpoolctl.threadpool_info()\n"
            "                  if i['internal_api'] == 'openblas']))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_numpy_and_scipy_load_the_pinned_kernels() -> None:
    base = {k: v for k, v in os.environ.items() if k not in (ENV_VAR, OVERRIDE_VAR)}
    chosen = _loaded_architectures({**base, ENV_VAR: "Haswell", OVERRIDE_VAR: "Sandybridge"}, False)
    assert chosen and set(chosen) == {"Sandybridge"}
    family = openblas_core(cpu_flags())
    if family is not None:  # this CPU has a family: the CLI pins it over a machine-wide value
        other = "Sandybridge"
        assert set(_loaded_architectures({**base, ENV_VAR: other}, True)) == {family}


def test_runtime_names_the_cpu_and_the_kernels_without_changing_the_environment(tmp_path: Path) -> None:
    before = dict(os.environ)
    info = runtime()
    assert set(info) == {"cpu", "openblas_coretype"} and dict(os.environ) == before
    assert info["cpu"] == cpu_model()
    assert info["openblas_coretype"] == pin_blas_kernels(dict(os.environ))
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU @ 3 GHz\n")
    assert cpu_model(cpuinfo) == "Some CPU @ 3 GHz" and cpu_model(tmp_path / "absent") is None


def test_once_numpy_is_loaded_the_environment_is_left_alone() -> None:
    """A process that loaded OpenBLAS already keeps its kernels, and so do the processes it starts."""
    code = ("import os, numpy\nfrom resonance.kernels import pin_blas_kernels\n"
            "print(pin_blas_kernels(), os.environ.get('OPENBLAS_CORETYPE'))")
    env = {k: v for k, v in os.environ.items() if k != OVERRIDE_VAR}
    out = subprocess.run([sys.executable, "-c", code], env={**env, ENV_VAR: "Sandybridge"}, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["Sandybridge", "Sandybridge"]


def test_this_test_process_runs_the_kernels_its_cli_subprocesses_run() -> None:
    import threadpoolctl

    pinned = os.environ.get(ENV_VAR)
    loaded = {i.get("architecture") for i in threadpoolctl.threadpool_info() if i["internal_api"] == "openblas"}
    if pinned:
        assert loaded == {pinned}
