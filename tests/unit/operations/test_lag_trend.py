"""Lag is judged by its trend over the window, not by a number."""

from __future__ import annotations

import math

import pytest

from hub.operations.lag import LagState, Sample, evaluate


def series(*points: tuple[int, int]) -> list[Sample]:
    """(committed, end) every 2 seconds."""
    return [Sample(2.0 * i, c, e) for i, (c, e) in enumerate(points)]


CASES = [
    ("caught up", series((10, 10), (20, 20), (30, 30)), LagState.OK, 0.0),
    ("catching up", series((0, 100), (40, 100), (80, 100)), LagState.OK, 1.0),  # 20 left at 20/s
    ("behind but keeping pace", series((0, 100), (50, 150), (100, 200)), LagState.OK, math.inf),
    ("falling behind while consuming", series((0, 10), (5, 30), (10, 60)), LagState.GROWING, None),
    ("not committing while messages arrive", series((5, 10), (5, 30), (5, 60)), LagState.STALLED, None),
    ("not committing, nothing new", series((5, 10), (5, 10), (5, 10)), LagState.STOPPED, None),
    ("offset went back", series((50, 60), (20, 60), (30, 60)), LagState.REWOUND, None),
    ("no commit yet, messages waiting", series((-1, 5), (-1, 5)), LagState.STOPPED, None),
]


@pytest.mark.parametrize("name,samples,state,eta", CASES, ids=[c[0] for c in CASES])
def test_trend(name, samples, state, eta):
    assert evaluate(samples) == (state, eta)


def test_a_single_sample_cannot_show_a_trend():
    assert evaluate(series((0, 5))) == (LagState.OK, None)
    assert evaluate(series((5, 5))) == (LagState.OK, 0.0)
