"""Local plugin files on the command line (`--plugins`, ``GRADEST_PLUGINS``): loaded with the
built-ins' decorators, errors named with file and line, edits recompute their cells."""
from __future__ import annotations

import os
import textwrap

import pandas as pd
import pytest

import gradest
from gradest import cli, plugins
from gradest.registry import ESTIMATORS

PLUGIN = textwrap.dedent('''
    """A local estimator plugin: REINFORCE with a fixed baseline, under its own name."""
    from gradest.estimators.reinforce import reinforce
    from gradest.registry import register_estimator


    @register_estimator("{name}")
    def {name}():
        """REINFORCE with the {baseline} baseline, from a local file."""
        return reinforce(baseline="{baseline}")._replace(name="{name}")
''')


@pytest.fixture
def plugin_file(tmp_path):
    made = []

    def write(name="local_reinforce", baseline="none", body=None):
        path = tmp_path / f"{name}.py"
        path.write_text(body if body is not None else PLUGIN.format(name=name, baseline=baseline))
        made.append((name, path))
        return path

    yield write
    for name, path in made:
        ESTIMATORS.entries.pop(name, None)
        plugins._LOADED.pop(str(path.resolve()), None)
    os.environ.pop(plugins.ENV_VAR, None)


def test_run_and_list_load_a_plugin_file(plugin_file, tmp_path, capsys):
    path = plugin_file()
    out = tmp_path / "results"
    argv = ["run", "--plugins", str(path), "--tasks", "bandit", "--estimators", "local_reinforce", "--backends",
            "torch", "--kinds", "gradient", "--seeds", "1", "--num-replicates", "20", "--quick", "--no-progress",
            "--no-report", "--out", str(out)]
    assert cli.main(argv) == 0, capsys.readouterr().err
    table = pd.read_csv(out / "results.csv")
    assert set(table["estimator_name"]) == {"local_reinforce"} and (table["status"] == "done").all()
    assert ESTIMATORS.entry("local_reinforce").source.startswith("local gradest_plugin_local_reinforce")
    assert cli.main(["list", "--plugins", str(path)]) == 0
    assert "local_reinforce" in capsys.readouterr().out
    # Dask workers get the file as data (`gradest.sweep.dask.WarmWorker`), not through the environment
    assert str(path.resolve()) in plugins.loaded_files()
    assert (str(path.resolve()), path.read_text()) in plugins.loaded_sources()
    assert str(path.resolve()) not in os.environ.get(plugins.ENV_VAR, "")

    # an edit recomputes the plugin's cells on the next run, in a new process as in this one
    first = set(table["code_fingerprint"])
    plugins._LOADED.pop(str(path.resolve()))
    ESTIMATORS.entries.pop("local_reinforce")
    plugin_file(baseline="moving_average")
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "0 reused" in err
    again = pd.read_csv(out / "results.csv")
    assert len(again) == 2 * len(table)  # the old cells stay in the store, beside the new ones
    assert set(again.loc[again["current_run"], "code_fingerprint"]).isdisjoint(first)
    assert set(again.loc[again["current_run"], "estimator"]) == {"local_reinforce[baseline=moving_average]"}


def test_sources_load_in_another_process_without_the_file(plugin_file, tmp_path):
    """What a Dask worker on another machine does: the file's text, loaded from a copy."""
    path = plugin_file(name="shipped_reinforce")
    sources = [(str(tmp_path / "elsewhere" / path.name), path.read_text())]  # no such file there
    [module] = plugins.load_sources(sources, tmp_path / "copies")
    copy = next((tmp_path / "copies").rglob(path.name))
    assert copy.read_text() == path.read_text() and "shipped_reinforce" in gradest.list_estimators()
    assert plugins.load_sources(sources, tmp_path / "copies") == [module]  # once per process
    plugins._LOADED.pop(str(copy.resolve()), None)


def test_the_environment_variable_loads_files(plugin_file, monkeypatch):
    path = plugin_file(name="env_reinforce")
    monkeypatch.setenv(plugins.ENV_VAR, str(path))
    plugins.load_files(plugins.env_files())
    assert "env_reinforce" in gradest.list_estimators()
    assert gradest.get_estimator("env_reinforce").name == "env_reinforce"


@pytest.mark.parametrize("body, where, message", [
    ("x = 1\nraise RuntimeError('no GPU here')\n", ":2:", "RuntimeError: no GPU here"),
    ("def broken(:\n    pass\n", ":1", "SyntaxError"),
    ("import no_such_module_for_gradest\n", ":1:", "ModuleNotFoundError"),
])
def test_an_error_in_a_plugin_file_names_the_file_and_line(plugin_file, body, where, message, capsys, tmp_path):
    path = plugin_file(name="broken_plugin", body=body)
    assert cli.main(["list", "--plugins", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"plugin file {path.resolve()}{where}" in err and message in err and "Traceback" not in err
