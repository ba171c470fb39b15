"""Shared fixtures: tiny random models (fast, every family) and the packaged real models.

Packaged models are skipped when not installed, unless ``ATTNSCOPE_REQUIRE_MODELS=1`` (set by
``.ci/run``), in which case a missing model fails the test instead of hiding it.
"""

from __future__ import annotations

import os
import tempfile
from functools import cache
from pathlib import Path

import pytest
import torch

import attnscope
from attnscope.models import LoadedModel
from attnscope.models.catalog import require_entry


# the user's data folder (runs store, keys): a fresh one per test session, inherited by the servers and
# CLI processes the tests start, so no test reads or writes the real store or keys; its models/ is the
# real data folder's (where `attnscope models install` put the packaged models)
def _session_home() -> str:
    from attnscope.home import home

    models = home(create=False) / "models"
    folder = Path(tempfile.mkdtemp(prefix="attnscope-home-"))
    if models.is_dir():
        (folder / "models").symlink_to(models, target_is_directory=True)
    return str(folder)


os.environ["ATTNSCOPE_HOME"] = _session_home()

# the devices the engine tests run on: the CPU always, a CUDA GPU where this machine has one
DEVICES = ("cpu", *(("cuda",) if torch.cuda.is_available() else ()))
CAUSAL_FAMILIES = ("gpt2", "llama", "qwen2", "mistral", "gemma3", "gemma2")
ALL_FAMILIES = (*CAUSAL_FAMILIES, "bert", "t5", "bart")

# the built-in token attribution methods, in catalogue order (written out here, not read from it)
TOKEN_METHODS = ("attention", "rollout", "flow", "grad-norm", "grad-x-input", "integrated-gradients", "occlusion")

ENGLISH = "The capital of France is"
CHINESE = "我爱中国，他的首都在于"
MIXED_TEXTS = (
    ENGLISH,
    CHINESE,
    "héllo 👋🏽 world\n\n  tabs\tand  spaces ",
    "Mixed 中文 and English: 北京 is the capital. 🇨🇳🇫🇷 e\u0301",
)


@cache
def tiny(family: str, *, device: str = "auto", dtype: str | None = None) -> LoadedModel:
    return attnscope.load_model(f"tiny:{family}", device=device, dtype=dtype)


@cache
def _packaged(alias: str) -> LoadedModel:
    return attnscope.load_model(alias)


def packaged(alias: str) -> LoadedModel:
    if not require_entry(alias).installed:
        message = f"{alias} is not installed (attnscope models install {alias})"
        if os.environ.get("ATTNSCOPE_REQUIRE_MODELS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return _packaged(alias)


@pytest.fixture(params=DEVICES)
def device(request) -> str:
    """Each device of DEVICES in turn (engine tests take it: the same test on the CPU and a GPU)."""
    return request.param
