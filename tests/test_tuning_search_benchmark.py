"""benchmarks/tuning_search.py: a part run again leaves the other parts as they were."""

import sys

from trainer_runs import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import tuning_search  # noqa: E402

RESULTS = """intro
<!-- tuning-search:begin -->
### mlp

old mlp
![mlp](figures/tuning_mlp.png)

### lenet5

old lenet5

<!-- tuning-search:end -->
after
"""


def _readme(rows):
    block = "\n".join([*tuning_search.SUMMARY_HEADER, *rows])
    return f"top\n<!-- tuning-summary:begin -->\n{block}\n<!-- tuning-summary:end -->\n"


def test_a_part_run_again_replaces_its_section_and_keeps_the_others():
    old = tuning_search.part_sections(
        tuning_search.read_block(RESULTS, "tuning-search")
    )
    assert list(old) == ["mlp", "lenet5"]
    assert old["lenet5"] == "### lenet5\n\nold lenet5\n"
    new = {"lenet300": "### lenet300\n\nnew\n", "mlp": "### mlp\n\nnew mlp\n"}
    block = "\n".join(tuning_search.merged(old, new))
    text = tuning_search.replace_block(RESULTS, "tuning-search", block)
    # PARTS order, the new mlp, the old lenet5 untouched, the text around kept.
    assert text.index("new mlp") < text.index("### lenet300") < text.index("old lenet5")
    assert "old mlp" not in text
    assert text.startswith("intro\n") and text.endswith("-->\nafter\n")
    again = tuning_search.part_sections(tuning_search.read_block(text, "tuning-search"))
    assert again == {**old, **new}


def test_a_part_run_again_replaces_its_readme_row_and_keeps_the_others():
    readme = _readme(["| lenet5 | a | b |", "| mlp | old |"])
    old = tuning_search.summary_rows(tuning_search.read_block(readme, "tuning-summary"))
    assert old == {"lenet5": "| lenet5 | a | b |", "mlp": "| mlp | old |"}
    rows = tuning_search.merged(old, {"mlp": "| mlp | new |"})
    assert rows == ["| mlp | new |", "| lenet5 | a | b |"]


def test_an_empty_block_has_no_sections_or_rows():
    assert tuning_search.part_sections("") == {}
    assert tuning_search.summary_rows(tuning_search.read_block("no markers", "x")) == {}


def test_a_resumed_search_says_its_time_is_not_the_whole_command():
    whole = tuning_search._command_time({"wall_time_s": 600.0})
    assert "The whole command" in whole and "10.0 min" in whole
    resumed = tuning_search._command_time(
        {"wall_time_s": 300.0, "completed_before_start": 24}
    )
    assert "resumed the search with 24 of its trials done" in resumed
    assert "whole command" not in resumed and "5.0 min" in resumed
