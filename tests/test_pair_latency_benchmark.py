"""benchmarks/low_rank_pair_latency.py: one row per layer shape and scheme."""

import sys

from trainer_runs import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import low_rank_pair_latency  # noqa: E402


def test_a_row_holds_every_rank_up_to_the_full_one_with_its_flops_ratio():
    # A 3x3 conv 4 -> 4 on 6x6 in scheme 2: a (12 x 12) matrix, 864 MACs per
    # rank (6x6 positions x (3 x 4 + 3 x 4)) against 6 x 6 x 9 x 4 x 4 = 5184.
    line = low_rank_pair_latency.row((6, 6, 4), 4, 3, 2)
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[:2] == ["6x6x4 -> 4, 3x3", "2"] and float(cells[2]) > 0
    by_rank = dict(zip(low_rank_pair_latency.RANKS, cells[3:], strict=True))
    assert [rank for rank, cell in by_rank.items() if cell] == [1, 2, 4, 6, 8, 12]
    assert by_rank[6].endswith("(1.00)") and by_rank[12].endswith("(2.00)")
    assert by_rank[1].endswith(f"({864 / 5184:.2f})")
    assert all(float(cell.split()[0]) > 0 for cell in by_rank.values() if cell)
