from __future__ import annotations

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
