import numpy as np
import pytest

from latentcast.codec.eval.bd import _pchip, bd_psnr, bd_rate, rd_hull

RATES = [100.0, 200.0, 400.0, 800.0, 1600.0]
PSNRS = [30.0, 33.0, 35.5, 37.5, 39.0]


def test_identical_curves_give_zero():
    assert bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)
    assert bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0.0, abs=1e-9)


def test_half_the_rate_gives_minus_fifty_percent():
    assert bd_rate(RATES, PSNRS, [r / 2 for r in RATES], PSNRS) == pytest.approx(-50.0, abs=1e-6)
    assert bd_rate(RATES, PSNRS, [r * 2 for r in RATES], PSNRS) == pytest.approx(100.0, abs=1e-6)


def test_one_db_better_everywhere():
    assert bd_psnr(RATES, PSNRS, RATES, [p + 1 for p in PSNRS]) == pytest.approx(1.0, abs=1e-9)


def test_no_overlap_is_none():
    assert bd_rate(RATES, PSNRS, [10, 20], [10, 12]) is None
    assert bd_psnr(RATES, PSNRS, [1e6, 2e6], [50, 52]) is None


def test_hull_drops_points_that_add_rate_but_no_quality():
    r, p = rd_hull([400, 100, 200, 300], [35, 30, 33, 32])
    assert list(r) == [100, 200, 400] and list(p) == [30, 33, 35]


def test_pchip_passes_through_points_and_stays_monotone():
    x = np.array([0.0, 1.0, 2.0, 5.0])
    y = np.array([0.0, 1.0, 1.1, 4.0])
    f = _pchip(x, y)
    assert np.allclose(f(x), y)
    t = np.linspace(0, 5, 500)
    assert np.all(np.diff(f(t)) >= -1e-12)


def test_several_models_make_a_ladder_curve_of_their_best_points():
    from latentcast.codec.eval.bench import LADDER, bd_table

    def pts(codec, model, rates, psnrs, accounting="total"):
        return [{"codec": codec, "preset": "medium" if model is None else None, "accounting": accounting,
                 "model": model, "kbps": r, "psnr": p} for r, p in zip(rates, psnrs)]

    anchor = pts("libx264", None, [50, 100, 200, 400], [30, 33, 36, 39], None)
    small = pts("latentcast", "s", [60, 70, 90], [30.5, 31, 31.2])
    large = pts("latentcast", "l", [150, 170, 210], [34, 35, 35.3])
    rows = {r["test"]: r for r in bd_table(anchor + small + large)}
    ladder = rows[f"latentcast {LADDER} (total)"]
    # Each model alone spans too little to say much; together their hull has 6 points.
    assert ladder["test_points"] == 6 and rows["latentcast s (total)"]["test_points"] == 3
    assert "fewer than" not in (ladder["note"] or "") and "fewer than" in rows["latentcast s (total)"]["note"]
    assert ladder["bd_rate_percent"] is not None
    assert len(bd_table(anchor + small)) == 1  # one model: no ladder
