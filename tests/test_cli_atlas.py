"""``attnscope atlas``: the text tables and the one-line refusals (exit status 2, before the model loads
where the command line alone is wrong)."""

from __future__ import annotations

import pytest

from tests.conftest import CHINESE
from tests.test_cli import run


def test_atlas_text_lists_every_head_and_the_qk_points():
    heads = run("atlas", CHINESE, "--model", "tiny:llama", "--quiet")
    assert heads.returncode == 0, heads.stderr.decode()
    lines = heads.stdout.decode("utf-8").splitlines()
    assert lines[0].startswith("12 heads by pca (component 1 (") and lines[1] == "layer  head  label  x  y"
    assert [tuple(line.split()[:2]) for line in lines[2:]] == [
        (str(layer), str(head)) for layer in range(3) for head in range(4)
    ]
    qk = run("atlas", CHINESE, "--model", "tiny:llama", "--qk", "2", "--projection", "tsne", "--quiet")
    assert qk.returncode == 0, qk.stderr.decode()
    shown = qk.stdout.decode("utf-8")
    assert shown.startswith("layer 2, heads 0, 1, 2, 3: ") and "by tsne" in shown and "'我'" in shown
    few = run("atlas", CHINESE, "--model", "tiny:llama", "--qk", "0", "--max-points", "3", "--quiet")
    lines = few.stdout.decode("utf-8").splitlines()
    assert few.returncode == 0 and len(lines) == 2 + 3, few.stderr.decode()
    assert "points kept (at most 3)" in lines[0] and lines[0].split("; ")[-1].startswith("3 of ")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--qk", "a:b"], "--qk must look like LAYER or LAYER:HEAD"),
        (["--qk", "5"], "layer 5 out of range"),
        (["--qk", "0:7"], "head 7"),
        (["--projection", "lda"], "invalid choice: 'lda'"),
        (["--neighbors", "1"], "n_neighbors must be 2 or more"),
        (["--projection", "tsne", "--seed", "-1"], "the seed must be an integer from 0 to 4294967295"),
        (["--projection", "umap", "--seed", str(2**32)], "the seed must be an integer from 0 to 4294967295"),
        (
            ["--projection", "tsne", "--perplexity", "40"],
            "perplexity must be above 0 and below the number of points (12)",
        ),
    ],
)
def test_bad_command_lines_are_refused_with_one_line(args, message):
    result = run("atlas", "The capital of France is", "--model", "tiny:llama", "--quiet", *args)
    error = result.stderr.decode("utf-8").strip()
    assert result.returncode == 2 and message in error and "\n" not in error, error
