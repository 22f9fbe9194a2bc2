"""docs/cli.md is what the settings render: it cannot go stale."""

import sys

from trainer_runs import REPO

from trainers import cli_reference, commands


def test_docs_cli_reference_is_up_to_date():
    assert cli_reference.PATH.read_text() == cli_reference.render(), (
        "docs/cli.md is stale: run python -m trainers.cli_reference"
    )


def test_reference_lists_every_flag_of_every_command():
    text = cli_reference.render()
    for name in cli_reference.COMMANDS:
        assert f"`python -m {commands.module_of(name)}`" in text
    for flag in ("`--lambda`", "`--[no]fn`", "`--energy`", "`--model_path`"):
        assert flag in text
    # No machine-dependent default (the embedded data's absolute path).
    assert str(REPO) not in text


def test_check_mode_fails_on_a_stale_file(tmp_path, monkeypatch):
    stale = tmp_path / "cli.md"
    stale.write_text(cli_reference.render().replace("Number of training epochs", "x"))
    monkeypatch.setattr(cli_reference, "PATH", stale)
    monkeypatch.setattr(sys, "argv", ["cli_reference", "--check"])
    try:
        cli_reference.main()
    except SystemExit as error:
        assert "is stale" in str(error.code)
    else:
        raise AssertionError("--check passed a stale file")

