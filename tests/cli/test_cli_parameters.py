"""The image options of ``ttstream generate`` and ``edit`` come from the typed parameters
(``ttstream.params.GenerationParameters``, ``EditParameters``) and their help from the
model table: a parameter added there is an option with no edit of the command line, or
is listed in ``ttstream.cli.PARAMETERS_WITHOUT_OPTIONS`` with the reason (docs/cli.md)."""

from __future__ import annotations

import re

import pytest

from tests.support.paths import ROOT
from ttstream import ValidationError, cli, params
from ttstream.client import DEFAULT_MODEL
from ttstream.params import EditParameters, GenerationParameters


def help_of(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        cli.main([command, "--help"])
    return " ".join(capsys.readouterr().out.split())


def options_in(text: str) -> set[str]:
    return set(re.findall(r"--[a-z][a-z-]*", text))


def option(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize(
    ("command", "declared"), [("generate", GenerationParameters), ("edit", EditParameters)]
)
def test_every_typed_parameter_is_an_option_or_excluded_with_a_reason(
    command: str, declared: type, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = options_in(help_of(command, capsys))
    for name in declared.__annotations__:
        if name in cli.PARAMETERS_WITHOUT_OPTIONS:
            assert option(name) not in shown
        else:
            assert option(name) in shown, f"{name} has no option on {command}"


def test_each_exclusion_is_a_typed_parameter_and_says_why() -> None:
    for name, reason in cli.PARAMETERS_WITHOUT_OPTIONS.items():
        assert name in EditParameters.__annotations__, f"{name}: not a typed parameter"
        assert len(reason) > 20


def test_an_edit_only_parameter_is_not_an_option_of_generate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    edit_only = set(EditParameters.__annotations__) - set(GenerationParameters.__annotations__)
    assert edit_only == {"input_fidelity"}
    assert "--input-fidelity" not in options_in(help_of("generate", capsys))


def test_the_help_gives_the_ranges_of_the_model_table(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of("edit", capsys)
    for field in ("qualities", "backgrounds", "output_formats", "styles", "input_fidelities"):
        for spec in params.MODELS.values():
            for value in getattr(spec, field):
                assert value in text, f"{value} ({field}) missing from the help"
    for spec in params.MODELS.values():
        assert all(size in text for size in spec.sizes)
    n_max = params.MODELS[DEFAULT_MODEL].n_max
    assert f"--n N number of images: 1 to {n_max} " in text
    assert "--partial-images N previews to stream: 0 to 3 " in text
    assert "--frame-count N frames of a gif: 2 to 16 " in text


def test_the_summary_follows_the_table() -> None:
    qualities = params.MODELS["gpt-image-2"].qualities
    others = "xhigh, max, hd, standard"
    assert params.allowed_summary("quality") == f"{', '.join(qualities)}; other models: {others}"
    assert params.allowed_summary("style") == "vivid, natural (dall-e-3 only)"
    assert params.allowed_summary("n") == "1 to 10 (dall-e-3: 1)"
    assert params.allowed_summary("n", "dall-e-3") == "1; other models: up to 10"
    assert params.allowed_summary("input_fidelity") == "high, low (not gpt-image-2)"
    assert params.allowed_summary("user") is None
    with pytest.raises(ValidationError):
        params.allowed_summary("quality", "no-such-model")


def test_a_misspelt_parameter_name_is_refused_naming_the_allowed_ones() -> None:
    from ttstream import UnknownNameError

    with pytest.raises(UnknownNameError, match="sise") as caught:
        params.allowed_summary("sise")
    assert "size" in str(caught.value)
    assert "output_format" in str(caught.value)


@pytest.mark.parametrize("command", ["generate", "edit"])
def test_docs_cli_options_lists_every_option_of_the_help(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # the Azure options were in --help and missing from the page
    page = (ROOT / "docs" / "cli.md").read_text()
    listed = page.split("## Options", 1)[1].split("\n## ", 1)[0]
    shown = {name for name in options_in(help_of(command, capsys)) if not name.endswith("-")}
    missing = shown - options_in(listed) - {"--help"}  # "--safety-" is a help line's wrap
    assert not missing, f"docs/cli.md, Options, lacks {sorted(missing)}"
