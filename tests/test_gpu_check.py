"""`make gpu-check` in its tiny mode: every part runs on this machine and lands in one summary.md, also in $OUT."""

import os
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SECTIONS = ["## Machine", "## CUDA tests", "## Training throughput", "## Real data: fold 0 of configs/cpu_small.json"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_tiny_gpu_check_writes_every_part_into_one_summary(tmp_path):
    returned = tmp_path / "returned"
    returned.mkdir()
    environment = {**os.environ, "OUT": str(returned), "OMP_NUM_THREADS": "1"}
    process = subprocess.run(["make", "-s", "gpu-check", f"GPU_CHECK_ARGS=--tiny --out {tmp_path / 'check'}"],
                             cwd=ROOT, env=environment, capture_output=True, text=True)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    summary = (tmp_path / "check" / "summary.md").read_text()
    assert (returned / "summary.md").read_text() == summary
    assert [line for line in summary.splitlines() if line.startswith("## ")] == SECTIONS
    assert "FAILED" not in summary
    assert re.search(r"tests/test_gpu.py`: \*\*\d+ (passed|skipped)", summary)
    rows = re.findall(r"^\| (stock|pointer) \| (float32|bf16) \| (sdpa|eager) \| [\d,.]+ \| [\d,]+ \|", summary, re.M)
    assert sorted(rows) == sorted((model, precision, attention) for model in ("stock", "pointer")
                                  for precision in ("float32", "bf16") for attention in ("sdpa", "eager"))
    assert "Skipped with --tiny" in summary
