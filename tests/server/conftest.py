from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

import attnscope
from attnscope.server.app import create_app
from attnscope.server.host import ModelHost
from tests.conftest import tiny


def loader(spec: str):
    return tiny(spec.removeprefix("tiny:")) if spec.startswith("tiny:") else attnscope.load_model(spec)


@pytest.fixture
def host() -> ModelHost:
    host = ModelHost(loader=loader)
    host.load("tiny:qwen2")
    return host


@pytest.fixture
def client(host) -> TestClient:
    return TestClient(create_app(host), raise_server_exceptions=False)


VOLATILE = {"provenance", "run_id"}  # answer parts that differ between two runs of one request (times, ids)


def assert_same(shown: Any, expected: Any, path: str = "") -> None:
    """Equal JSON, numbers within 1e-6 (the same model on the same CPU: only summation order may
    differ); the parts in VOLATILE left out."""
    if isinstance(expected, dict):
        assert isinstance(shown, dict) and set(shown) - VOLATILE == set(expected) - VOLATILE, path
        for key in set(expected) - VOLATILE:
            assert_same(shown[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(shown, list) and len(shown) == len(expected), path
        for index, (a, b) in enumerate(zip(shown, expected, strict=True)):
            assert_same(a, b, f"{path}[{index}]")
    elif isinstance(expected, float) and not isinstance(shown, bool):
        assert isinstance(shown, int | float) and math.isclose(shown, expected, rel_tol=1e-6, abs_tol=1e-6), path
    else:
        assert shown == expected, path
