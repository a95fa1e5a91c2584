"""Entry-point plugins: the example plugin is discovered, a broken one is isolated."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from plugin_env import (
    EXAMPLE_PLUGIN,
    env_with_path,
    install_example_plugin,
    make_broken_plugin,
    make_halfway_plugin,
)

import genlatent
from genlatent import registry

EXAMPLE = "genlatent-example"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The example plugin and two broken plugins, importable for this module's tests."""
    site = install_example_plugin(tmp_path_factory.mktemp("site"))
    make_broken_plugin(site)
    make_halfway_plugin(site)
    sys.path.insert(0, str(site))
    registry.reset_for_tests()
    yield site
    sys.path.remove(str(site))
    prefixes = ("genlatent_example", "genlatent_broken", "genlatent_halfway")
    for name in [m for m in sys.modules if m.startswith(prefixes)]:
        del sys.modules[name]
    registry.reset_for_tests()


def test_example_parts_are_registered_with_their_provider(plugin_site: Path) -> None:
    assert registry.priors.provider("student_t") == EXAMPLE
    assert registry.likelihoods.provider("continuous_bernoulli") == EXAMPLE
    assert registry.encoders.provider("linear") == EXAMPLE
    assert registry.decoders.provider("linear") == EXAMPLE
    assert registry.plugin_versions()[EXAMPLE] == "0.1.0"
    assert registry.priors.provider("standard_normal") == "genlatent"


def test_broken_plugin_is_reported_and_not_fatal(plugin_site: Path) -> None:
    errors = registry.plugin_errors()
    assert "genlatent-broken" in errors
    assert "ImportError: boom: needs the missing package foo" in errors["genlatent-broken"]
    assert "genlatent-broken" not in registry.plugin_versions()
    # Every other part still works, and a failed lookup mentions the broken plugin.
    assert "student_t" in registry.priors.names()
    failed = "plugins that failed to load: genlatent-broken"
    with pytest.raises(genlatent.RegistryError, match=failed):
        registry.priors.get("no_such_prior")


def test_failing_plugins_warn_nothing_when_loaded(plugin_site: Path) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        registry.reset_for_tests()
    assert [str(w.message) for w in caught] == []
    assert {"genlatent-broken", "genlatent-halfway"} <= set(registry.plugin_errors())


def test_half_registered_plugin_is_rolled_back(plugin_site: Path) -> None:
    from genlatent.distributions.priors import StandardNormalPrior

    assert "halfway_prior" not in registry.priors
    assert registry.priors.get("standard_normal") is StandardNormalPrior
    assert registry.priors.provider("standard_normal") == "genlatent"
    reason = registry.plugin_errors()["genlatent-halfway"]
    assert "RuntimeError: halfway: the second part needs a newer genlatent" in reason
    assert "\n" not in reason
    assert 'raise RuntimeError("halfway' in registry.plugin_tracebacks()["genlatent-halfway"]


def _train_with_failed_plugin_part(site: Path, tmp_path: Path, *flags: str) -> str:
    """stderr of ``genlatent [flags] train`` asking for the failed plugin's prior."""
    from genlatent.data import write_h5

    data = write_h5(tmp_path / "d.h5", np.random.rand(32, 4).astype(np.float32))
    result = subprocess.run(
        [sys.executable, "-m", "genlatent.cli.main", *flags, "train", str(data),
         "--prior", "halfway_prior", "--epochs", "1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, env=env_with_path(site), timeout=120,
    )
    assert result.returncode != 0
    return result.stderr


def test_failed_plugin_is_one_line_in_the_cli(plugin_site: Path, tmp_path: Path) -> None:
    lines = _train_with_failed_plugin_part(plugin_site, tmp_path).strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("Error: unknown prior 'halfway_prior'")
    assert "plugins that failed to load: genlatent-broken, genlatent-halfway" in lines[0]


def test_failed_plugin_details_with_debug(plugin_site: Path, tmp_path: Path) -> None:
    stderr = _train_with_failed_plugin_part(plugin_site, tmp_path, "--debug")
    assert "genlatent plugin genlatent-halfway failed to load" in stderr
    assert 'raise RuntimeError("halfway' in stderr  # the plugin's own traceback


def test_plugin_parts_build_and_train_through_the_python_api(plugin_site: Path) -> None:
    spec = {
        "model": "vae",
        "latent_dim": 3,
        "data": {"kind": "vectors", "shape": [12]},
        "encoder": "linear",
        "decoder": "linear",
        "prior": {"name": "student_t", "params": {"df": 4.0}},
        "likelihood": "continuous_bernoulli",
    }
    model = genlatent.build(spec)
    x = torch.rand(64, 12)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    first = None
    for step in range(30):
        loss, metrics = model.loss({"x": x}, step)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        first = loss.item() if first is None else first
    assert torch.isfinite(loss)
    assert loss.item() < first
    # Student-t has no closed-form KL against the normal posterior: the Monte-Carlo path is used.
    assert genlatent.kl_divergence  # public
    from genlatent.distributions.kl import kl_method

    q = model.posterior(model.encoder(x[:4]))
    assert kl_method(q, model.prior()) == "monte_carlo"


def test_saved_model_records_the_plugin_and_missing_plugin_is_named(
    plugin_site: Path, tmp_path: Path
) -> None:
    spec = {"latent_dim": 2, "data": {"kind": "vectors", "shape": [5]}, "prior": "student_t"}
    model = genlatent.build(spec)
    model.save(tmp_path / "m")
    meta = (tmp_path / "m" / "meta.json").read_text()
    assert '"genlatent-example": "0.1.0"' in meta
    hidden = [p for p in sys.path if p in (str(plugin_site), str(EXAMPLE_PLUGIN))]
    for folder in hidden:  # the source folder too: the plugin's own tests put it on sys.path
        sys.path.remove(folder)
    try:
        for name in [m for m in sys.modules if m.startswith("genlatent_example")]:
            del sys.modules[name]
        registry.reset_for_tests()
        with pytest.raises(genlatent.PluginError) as info:
            genlatent.load(tmp_path / "m")
        assert "prior 'student_t' is not available" in str(info.value)
        assert "'genlatent-example'" in str(info.value)
    finally:
        sys.path[:0] = hidden
        registry.reset_for_tests()


def test_cli_trains_on_the_plugin_reader(plugin_site: Path, tmp_path: Path) -> None:
    folder = tmp_path / "arrays"
    folder.mkdir()
    rng = np.random.default_rng(0)
    np.save(folder / "x.npy", (rng.random((96, 6)) < 0.3).astype(np.float32))
    np.save(folder / "y.npy", rng.integers(0, 3, 96))
    np.save(folder / "notes.npy", np.zeros((2, 2)))  # not aligned: not a label

    def genlatent_cli(*args: object) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "genlatent.cli.main", *map(str, args)],
            capture_output=True, text=True, env=env_with_path(plugin_site), timeout=300,
        )

    run = tmp_path / "run"
    trained = genlatent_cli("train", folder, "--epochs", "2", "--latent-dim", "2",
                            "--set", "data.labels=y", "--out", run)
    assert trained.returncode == 0, trained.stderr
    assert (run / "model").is_dir() and (run / "plots" / "latent.png").is_file()
    config = json.loads((run / "config.json").read_text())
    assert config["data"]["path"] == str(folder) and config["data"]["labels"] == "y"
    info = genlatent_cli("data", "info", folder)
    assert info.returncode == 0, info.stderr
    assert "  label y: int64" in info.stdout and "notes" not in info.stdout


def test_cli_lists_plugin_parts_and_reports_broken_plugin(plugin_site: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "genlatent.cli.main", "plugins"],
        capture_output=True, text=True, env=env_with_path(plugin_site), timeout=120,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:2] == ["student_t", EXAMPLE] for line in lines)
    assert any(line.split()[:2] == ["linear", EXAMPLE] for line in lines)
    assert any(line.split()[:2] == ["vae", "genlatent"] for line in lines)
    failed = lines.index("failed plugins:")
    assert "genlatent-broken" in lines[failed + 1] and "boom" in lines[failed + 1]
    assert "genlatent-halfway" in lines[failed + 2] and "halfway" in lines[failed + 2]
    assert not any(line.split()[:1] == ["halfway_prior"] for line in lines)
    assert "Traceback" not in result.stderr


def test_readme_plugin_snippets_are_the_plugin_files() -> None:
    readme = (EXAMPLE_PLUGIN.parents[1] / "README.md").read_text()
    section = readme[readme.index("## Plugins") : readme.index("## Layout")]
    blocks = section.split("```python\n")[1:]
    init, prior = (block[: block.index("```")] for block in blocks)
    package = EXAMPLE_PLUGIN / "genlatent_example"
    assert init == (package / "__init__.py").read_text()
    assert prior in (package / "parts.py").read_text()
    entry_point = 'example = "genlatent_example:register"'
    assert entry_point in section and entry_point in (EXAMPLE_PLUGIN / "pyproject.toml").read_text()
