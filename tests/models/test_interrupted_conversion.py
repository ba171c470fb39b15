"""A GGUF conversion killed half-way leaves a PID-named temporary that the next run deletes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import attnscope
from attnscope.models import cache, temporaries
from attnscope.models.disk import disk_bytes
from tests.conftest import ENGLISH
from tests.models.conftest import MB, Sandbox, kill_midway

LOAD = "import sys, attnscope; attnscope.load_model(sys.argv[1], device='cpu')"


@pytest.mark.slow
def test_a_killed_conversion_is_deleted_by_the_next_run_and_a_load_then_works(
    sandbox: Sandbox, smollm2_file: Path, tmp_path: Path
):
    gguf = tmp_path / "weights" / "smol.gguf"
    gguf.parent.mkdir()
    shutil.copyfile(smollm2_file, gguf)
    converted = sandbox.cache / "converted"
    log = (tmp_path / "load.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", LOAD, str(gguf)], env=sandbox.env, stdout=log, stderr=log)

    def half_written() -> Path | None:  # save_pretrained is writing the safetensors
        return next((p for p in converted.glob(".*.tmp") if disk_bytes(p) > MB), None)

    partial = kill_midway(process, half_written, timeout=600, what="the conversion's temporary to fill", log=log)
    assert temporaries.writer_pid(partial.name) == process.pid and partial.exists()
    assert not (partial / cache.CONVERSION_MARKER).exists()  # half done: never trusted, never renamed

    result = sandbox.cli("models")  # the next run
    assert result.returncode == 0, result.stderr
    assert f"deleted abandoned temporary {partial}" in result.stderr
    assert not partial.exists() and list(converted.iterdir()) == []

    model = attnscope.load_model(str(gguf), device="cpu")  # converts again, this time to the end
    assert attnscope.capture(model, ENGLISH).top_predictions(-1, 1)[0].token == " Paris"
    finished = cache.conversion_dir(model.weights_sha256, "float32")
    assert [p.name for p in converted.iterdir()] == [finished.name]
    assert (finished / cache.CONVERSION_MARKER).exists()
