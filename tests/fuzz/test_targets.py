"""Every fuzz target, on a few hundred Hypothesis inputs (random bytes and mutated seeds):
only the project's own errors may escape. The long coverage-guided runs are fuzz.py's."""

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets  # noqa: E402


def _mutated(seed: bytes):
    return st.tuples(st.integers(0, len(seed)), st.binary(max_size=64), st.integers(0, 32)).map(
        lambda t: seed[: t[0]] + t[1] + seed[t[0] + t[2]:])


@pytest.mark.parametrize("name", sorted(targets.TARGETS))
def test_target_raises_only_our_errors(name):
    seed = targets.SEEDS[name]

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=512), _mutated(seed)))
    def run(data):
        targets.TARGETS[name](data)

    run()
    targets.TARGETS[name](seed)
