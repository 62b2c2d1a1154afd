"""Fixtures of the zoo tests."""

import pytest

from reclayers import data


@pytest.fixture(scope="module")
def tiny():
    """Two dense, three categorical fields, a 4-step history of C1 and two labels."""
    return data.make_synthetic(
        240, n_dense=2, n_categorical=3, vocab_size=12, sequence_length=4, second_task=True, seed=0
    )
