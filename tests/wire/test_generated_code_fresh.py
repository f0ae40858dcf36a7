"""herd/v1 must be exactly what `python scripts/gen_protos.py` produces from protos/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_protos.py"


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_committed_generated_code_is_fresh():
    result = _check(ROOT)
    assert result.returncode == 0, f"stale generated code; run `python scripts/gen_protos.py`\n{result.stderr}"


def test_check_mode_lists_stale_missing_and_orphaned_files(tmp_path):
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    shutil.copytree(ROOT / "herd" / "v1", tmp_path / "herd" / "v1", ignore=shutil.ignore_patterns("__pycache__"))
    v1 = tmp_path / "herd" / "v1"
    (v1 / "replay_pb2.py").write_text("# edited by hand\n")
    (v1 / "params_pb2_grpc.py").unlink()
    (v1 / "old_pb2.py").write_text("")
    result = _check(tmp_path)
    assert result.returncode == 1
    assert "stale: herd/v1/replay_pb2.py" in result.stderr
    assert "missing: herd/v1/params_pb2_grpc.py" in result.stderr
    assert "orphaned (its proto is gone): herd/v1/old_pb2.py" in result.stderr
    assert "stale: herd/v1/tensor_pb2.py" not in result.stderr
