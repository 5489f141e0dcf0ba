"""pass@k, cons@k, format and length metrics against hand-computed values (format itself: tests/test_judge.py)."""

from __future__ import annotations

import math

import pytest

from r1.eval.metrics import (
    ItemOutcome,
    aggregate,
    cons_at_k,
    length_stats,
    majority_vote,
    pass_at_k,
    pass_ks,
    truncated_share,
)


def test_pass_at_k_known_values() -> None:
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(10, 3, 10) == 1.0 and pass_at_k(10, 1, 10) == 1.0
    assert pass_at_k(10, 0, 1) == 0.0 and pass_at_k(10, 0, 10) == 0.0
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)  # 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(4, 4, 2) == 1.0


def test_pass_at_k_matches_the_binomial_formula_and_is_stable() -> None:
    for n in range(1, 15):
        for c in range(n + 1):
            for k in range(1, n + 1):
                assert pass_at_k(n, c, k) == pytest.approx(1 - math.comb(n - c, k) / math.comb(n, k), abs=1e-12)
    value = pass_at_k(1024, 3, 64)  # binomials of ~10^100: the product form stays finite
    assert 0.0 < value < 1.0 and value == pytest.approx(1 - math.comb(1021, 64) / math.comb(1024, 64))


def test_pass_at_k_rejects_impossible_arguments() -> None:
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 5)


def test_reported_ks() -> None:
    assert pass_ks(1) == [1] and pass_ks(8) == [1, 2, 4, 8] and pass_ks(6) == [1, 2, 4, 6]


def test_majority_vote_ties_and_abstentions() -> None:
    ident = str.strip
    assert majority_vote(["5", "6", "5", "6"], ident) == 0  # tie: first occurrence wins
    assert majority_vote(["6", "5", "5", "6"], ident) == 0
    assert majority_vote(["6", "5", "5"], ident) == 1
    assert majority_vote([None, None, "7"], ident) == 2  # abstentions do not vote
    assert majority_vote([None, None], ident) is None
    assert majority_vote([], ident) is None


def test_majority_vote_groups_by_normalized_answer() -> None:
    assert majority_vote(["3", "1/2", "0.5", "3", "\\frac{1}{2}"]) == 1  # 1/2 three times, 3 twice
    assert majority_vote(["x = 4", "4", "5"]) == 0


def test_cons_at_k() -> None:
    assert cons_at_k(["5", "6", "5"], [True, False, True])
    assert not cons_at_k(["6", "5", "6", None], [False, True, False, False])
    assert cons_at_k(["5", "6"], [True, False]) and not cons_at_k(["6", "5"], [False, True])  # ties
    assert not cons_at_k([None, None], [False, False])


def test_length_stats_and_truncation() -> None:
    assert length_stats([1, 2, 3, 4]) == {"mean": 2.5, "p50": 2.5, "p90": pytest.approx(3.7), "max": 4.0}
    assert length_stats([]) == {"mean": 0.0, "p50": 0.0, "p90": 0.0, "max": 0.0}
    assert truncated_share(["stop", "length", "stop", "stop"]) == 0.25 and truncated_share([]) == 0.0


def test_aggregate() -> None:
    a = ItemOutcome([True, False, False, False], False, [True] * 4, [10, 20, 30, 40], ["stop"] * 4)
    b = ItemOutcome([True, True, False, False], True, [True, False, True, True], [5] * 4, ["length"] + ["stop"] * 3)
    m = aggregate([a, b], k=4)
    assert m["n_items"] == 2 and m["n_samples"] == 8
    assert m["pass@1"] == pytest.approx((0.25 + 0.5) / 2)
    assert m["pass@2"] == pytest.approx(((1 - 3 / 6) + (1 - 1 / 6)) / 2)
    assert m["pass@4"] == 1.0 and m["cons@4"] == 0.5
    assert m["format_rate"] == 7 / 8 and m["truncated_share"] == 1 / 8
    assert m["length_mean"] == 15.0 and m["length_max"] == 40.0


def test_aggregate_leaves_open_items_out_of_pass_at_k_and_counts_them() -> None:
    judged = ItemOutcome([True, False], False, [True, True], [10, 20], ["stop", "stop"])
    open_ = ItemOutcome([None, None], None, [False, True], [30, 40], ["stop", "length"])
    m = aggregate([judged, open_], k=2)
    assert (m["n_items"], m["n_samples"], m["n_open"]) == (2, 4, 1)
    assert m["pass@1"] == 0.5 and m["pass@2"] == 1.0 and m["cons@2"] == 0.0  # the judged item alone
    assert m["format_rate"] == 3 / 4 and m["length_mean"] == 25.0 and m["truncated_share"] == 1 / 4  # all items
    only_open = aggregate([open_], k=2)
    assert only_open["n_open"] == 1 and not any(key.startswith(("pass@", "cons@")) for key in only_open)
    assert "n_open" not in aggregate([judged], k=2)
