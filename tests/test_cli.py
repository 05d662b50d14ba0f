"""The command line: fast help without heavy imports, one clear error line for bad input."""

import subprocess
import sys
from pathlib import Path

HEAVY = ["torch", "mlflow", "prefect", "great_expectations", "evidently", "pandas", "dvc", "lightning", "faiss",
         "fastapi", "uvicorn", "numpy", "scipy", "matplotlib", "pyroomacoustics", "onnxruntime", "onnx", "soundfile"]


def test_help_lists_the_stage_verbs() -> None:
    proc = subprocess.run([sys.executable, "-m", "resonance", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0
    for verb in ("catalog", "validate"):
        assert verb in proc.stdout


def test_help_imports_nothing_heavy() -> None:
    code = ("import sys; from resonance.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "usage: resonance" in proc.stdout  # the help really ran
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_bad_params_give_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("catalog: {seed: 1}\n")
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(bad), "catalog"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith("resonance catalog: error: catalog: missing key(s)")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_catalog_is_a_clear_error(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-m", "resonance", "--params", str(root / "params.yaml"), "validate",
                           "--catalog", str(tmp_path / "nothing")], capture_output=True, text=True)
    assert proc.returncode == 2 and "run `resonance catalog`" in proc.stderr


def test_evaluate_torch_threads_must_be_a_positive_whole_number() -> None:
    for bad in ("0", "two"):
        proc = subprocess.run([sys.executable, "-m", "resonance", "evaluate", "--method", "embedding",
                               "--torch-threads", bad], capture_output=True, text=True)
        assert proc.returncode == 2
        assert "argument --torch-threads: expected a whole number >= 1" in proc.stderr
