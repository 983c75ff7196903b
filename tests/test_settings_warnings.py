"""Unknown ``PARLEY_*`` variables and ``parley.toml`` keys are named, with the closest
known setting; the LLM URL must have a scheme."""

from __future__ import annotations

from pathlib import Path

import pytest

from parley.config import ConfigError, load_settings, settings_warnings


def test_a_misspelt_variable_gets_the_closest_name(tmp_path: Path) -> None:
    env = {"PARLEY_LLM_MDOEL": "x", "PARLEY_LLM_MODEL": "y", "HOME": "/root"}
    assert settings_warnings(env, tmp_path / "parley.toml") == [
        "unknown setting PARLEY_LLM_MDOEL is ignored; did you mean PARLEY_LLM_MODEL?"
    ]


def test_a_variable_like_nothing_gets_no_guess(tmp_path: Path) -> None:
    assert settings_warnings({"PARLEY_ZZZ": "1"}, tmp_path / "parley.toml") == [
        "unknown setting PARLEY_ZZZ is ignored"
    ]


def test_test_and_benchmark_variables_are_not_settings(tmp_path: Path) -> None:
    env = {"PARLEY_TEST_POSTGRES_URL": "x", "PARLEY_BENCH_HARNESS": "1", "PARLEY_DATA_DIR": "d"}
    assert settings_warnings(env, tmp_path / "parley.toml") == []


def test_unknown_toml_keys(tmp_path: Path) -> None:
    toml = tmp_path / "parley.toml"
    toml.write_text('llm_modle = "llama3.1"\nredis_url = "redis://x"\nPARLEY_DATA_DIR = "d"\n')
    assert settings_warnings({}, toml) == [
        f"{toml}: unknown key 'PARLEY_DATA_DIR' is ignored; did you mean data_dir?",
        f"{toml}: unknown key 'llm_modle' is ignored; did you mean llm_model?",
    ]


@pytest.mark.parametrize("url", ["localhost:11434/v1", "api.openai.com/v1", "ws://x/v1"])
def test_an_llm_url_needs_a_scheme(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent)  # no parley.toml here
    with pytest.raises(ConfigError, match=r"PARLEY_LLM_BASE_URL: .*must start with http://"):
        load_settings(llm_base_url=url)


def test_an_empty_model_name_is_a_setting_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).parent)
    with pytest.raises(ConfigError, match="PARLEY_LLM_MODEL: "):
        load_settings(llm_model="")
