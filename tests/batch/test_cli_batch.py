"""``attnscope batch``: a real process killed with SIGKILL mid-run continues where it stopped and ends
with exactly the rows of an uninterrupted run; bad command lines and corpora are one line, exit 2,
and write nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from attnscope.batch import layout
from tests.batch.test_batch_local import PROMPTS, table_of, write_corpus
from tests.conftest import CHINESE, ENGLISH
from tests.test_cli import run

CORPUS = [{"text": f"{ENGLISH} number {n}." if n % 2 else f"{CHINESE}{n}", "id": f"p{n}"} for n in range(16)]


def batch(*args: str) -> subprocess.CompletedProcess[bytes]:
    return run("batch", *args, "--model", "tiny:llama", "--quiet")


def test_cli_writes_the_atlas_and_prints_its_index(tmp_path):
    corpus = write_corpus(tmp_path, PROMPTS)
    done = batch(str(corpus), "--out", str(tmp_path / "A"), "--methods", "attention,rollout", "--json")
    assert done.returncode == 0, done.stderr.decode()
    index = json.loads(done.stdout.decode("utf-8"))
    assert index == json.loads((tmp_path / "A" / layout.INDEX).read_text(encoding="utf-8"))
    assert index["complete"] and index["methods"] == ["attention", "rollout"] and index["engine"] == "local"
    prompts = table_of(tmp_path / "A", "prompts")
    assert prompts.column_names[-3:] == ["score_attention", "score_rollout", "tokens"]
    assert prompts["prompt_id"].to_pylist() == ["fr", "1", "phone", "3", "4"]
    assert pq.read_table(tmp_path / "A" / layout.SUMMARY).num_rows == 3 * 4 * 6
    text = batch(str(corpus), "--out", str(tmp_path / "A"), "--methods", "attention,rollout")  # already complete
    assert text.returncode == 0, text.stderr.decode()
    assert text.stdout.decode().startswith(f"atlas {tmp_path / 'A'} (complete): 5 prompts, 1 shards, 60 head rows")


def test_a_killed_run_continues_where_it_stopped(tmp_path):
    corpus = write_corpus(tmp_path, CORPUS)
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    args = ["--shard-size", "2", "--methods", "attention,grad-norm"]
    done = batch(str(corpus), "--out", str(whole), *args)
    assert done.returncode == 0, done.stderr.decode()
    command = [sys.executable, "-m", "attnscope", "batch", str(corpus), "--out", str(resumed), *args]
    process = subprocess.Popen([*command, "--model", "tiny:llama", "--quiet"], stderr=subprocess.DEVNULL)
    index_path = resumed / layout.INDEX
    deadline = time.monotonic() + 300
    shards_at_kill = 0
    while time.monotonic() < deadline and process.poll() is None:
        try:
            shards_at_kill = len(json.loads(index_path.read_text(encoding="utf-8"))["shards"])
        except (OSError, ValueError, KeyError):
            shards_at_kill = 0
        if shards_at_kill >= 1:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before the first shard was seen"
    killed = json.loads(index_path.read_text(encoding="utf-8"))
    assert not killed["complete"] and 1 <= len(killed["shards"]) < 8
    again = batch(str(corpus), "--out", str(resumed), *args)
    assert again.returncode == 0, again.stderr.decode()
    for part in ("prompts", "heads"):
        assert table_of(resumed, part).equals(table_of(whole, part)), part
    indices = table_of(resumed, "prompts")["prompt_index"].to_pylist()
    assert indices == list(range(16))  # every prompt once, in corpus order
    assert pq.read_table(resumed / layout.SUMMARY).equals(pq.read_table(whole / layout.SUMMARY))


@pytest.mark.parametrize(
    ("lines", "args", "message"),
    [
        (b'{"text": "ok"}\nnot json\n', [], "line 2: not valid JSON"),
        (b'{"text": "a", "id": "x"}\n{"text": "b", "id": "x"}\n', [], "line 2: id 'x' is used twice"),
        (b'{"text": "\\udc80"}\n', [], 'line 1: "text" holds a lone surrogate (U+DC80)'),
        (b'{"text": "ok"}\n', ["--top-k", "0"], "--top-k must be between 1 and 100"),
        (b'{"text": "ok"}\n', ["--methods", "parts"], "parts gives no token scores"),
        (b'{"text": "ok"}\n', ["--methods", "nope"], "nope"),
        (b'{"text": "ok"}\n', ["--workers", "2"], "--workers is for --engine ray"),
        (b'{"text": "ok"}\n', ["--address", "auto"], "--address is for --engine ray"),
        (b'{"text": "ok"}\n', ["--engine", "ray", "--address", "127.0.0.1:1"], "no Ray cluster answers there"),
        (b'{"text": "ok"}\n', ["--pii-policy", "hash"], "invalid choice: 'hash'"),
        (b'{"text": "ok"}\n', ["--engine", "spark"], "invalid choice: 'spark'"),
        # a prompt beyond the model's context late in the corpus: refused before the first shard is written
        (b'{"text": "ok"}\n{"text": "' + b"word " * 100 + b'"}\n', ["--shard-size", "1"], "reads at most 256"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, lines, args, message):
    corpus = tmp_path / "c.jsonl"
    corpus.write_bytes(lines)
    done = batch(str(corpus), "--out", str(tmp_path / "A"), *args)
    error = done.stderr.decode("utf-8").strip()
    assert done.returncode == 2 and message in error, error
    assert len(error.splitlines()) == 1
    assert not (tmp_path / "A").exists()


def test_a_folder_holding_something_else_is_refused(tmp_path):
    corpus = write_corpus(tmp_path, PROMPTS[:1])
    (tmp_path / "A").mkdir()
    (tmp_path / "A" / "thesis.tex").write_text("mine", encoding="utf-8")
    done = batch(str(corpus), "--out", str(tmp_path / "A"))
    assert done.returncode == 2 and "not empty and holds no atlas" in done.stderr.decode()
    assert [p.name for p in (tmp_path / "A").iterdir()] == ["thesis.tex"]
