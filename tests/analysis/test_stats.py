"""Row statistics on hand-made rows whose answers are known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnscope.analysis.stats import row_stats, without_special


def test_uniform_row():
    stats = row_stats(np.full(8, 1 / 8))
    assert stats.sum == pytest.approx(1)
    assert stats.entropy_nats == pytest.approx(math.log(8))
    assert stats.mass90_tokens == 8  # 7 tokens hold only 87.5 %


def test_peaked_row():
    stats = row_stats(np.array([0.05, 0.9, 0.05, 0.0]))
    assert (stats.max, stats.argmax, stats.mass90_tokens) == (0.9, 1, 1)
    assert stats.entropy_nats == pytest.approx(-(0.9 * math.log(0.9) + 2 * 0.05 * math.log(0.05)))


def test_without_special_renormalises_the_rest():
    row = without_special(np.array([0.5, 0.25, 0.25]), np.array([True, False, False]))
    np.testing.assert_allclose(row, [0, 0.5, 0.5])
    assert (without_special(np.array([1.0, 0.0]), np.array([True, False])) == 0).all()
