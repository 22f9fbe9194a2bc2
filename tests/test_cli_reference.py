"""docs/cli.md and docs/api.md are what the code renders: they cannot go stale."""

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



def test_docs_api_reference_is_up_to_date_and_complete():
    import keras_rank
    from trainers import api_reference

    grouped = [name for names in api_reference.GROUPS.values() for name in names]
    assert sorted(grouped) == sorted(keras_rank.__all__)
    assert api_reference.PATH.read_text() == api_reference.render(), (
        "docs/api.md is stale: run python -m trainers.api_reference"
    )
