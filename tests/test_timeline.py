import numpy as np
import pytest

from nbweights.history.timeline import Timeline


def test_append_grows_and_keeps_rows_in_order():
    t = Timeline()
    for step in range(10):
        t.append(step, value=np.float64(step * 2), vec=np.full(3, step, np.float32))
    assert len(t) == 10
    np.testing.assert_array_equal(t.steps, np.arange(10))
    np.testing.assert_array_equal(t.column("vec")[:, 0], np.arange(10))


def test_thin_keeps_first_and_last():
    t = Timeline()
    for step in range(11):
        t.append(step, value=np.float64(step))
    t.thin()
    np.testing.assert_array_equal(t.steps, [0, 2, 4, 6, 8, 10])
    t.append(11, value=np.float64(11))
    t.thin()
    np.testing.assert_array_equal(t.steps, [0, 4, 8, 11])


def test_steps_may_not_go_back_and_columns_must_match():
    t = Timeline()
    t.append(5, value=np.float64(1))
    with pytest.raises(ValueError, match="before the last"):
        t.append(4, value=np.float64(1))
    with pytest.raises(ValueError, match="columns"):
        t.append(6, other=np.float64(1))


def test_index_at_finds_latest_row_at_or_before():
    t = Timeline()
    for step in (0, 10, 20):
        t.append(step, value=np.float64(step))
    assert t.index_at(15) == 1 and t.index_at(20) == 2 and t.index_at(None) == 2
    with pytest.raises(LookupError):
        t.index_at(-1)
