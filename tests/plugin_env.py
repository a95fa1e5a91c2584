"""Install the example plugin, and make a broken one, in temporary folders for tests.

The example plugin is pip-installed (no deps, no network) into a temporary target folder put
on ``sys.path``, so the tests exercise the real entry-point discovery without touching the
environment the tests run in.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN = ROOT / "plugins" / "genlatent-example"


def install_example_plugin(target: Path) -> Path:
    """pip-install ``plugins/genlatent-example`` into ``target`` and return it.

    The source is copied first: building in place would leave an ``.egg-info`` with the entry
    point in the source folder, which would then count as an installed plugin.
    """
    source = target.parent / f"{target.name}-source"
    shutil.copytree(EXAMPLE_PLUGIN, source, ignore=shutil.ignore_patterns("*.egg-info", "build"))
    subprocess.run(
        [
            sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
            "--no-build-isolation", "--disable-pip-version-check",
            "--target", str(target), str(source),
        ],
        check=True,
        capture_output=True,
    )
    return target


def make_plugin(target: Path, name: str, source: str) -> Path:
    """A distribution ``name`` (e.g. ``genlatent-broken``) whose package ``genlatent_...``
    holds ``source`` and whose entry point is its ``register``."""
    module = name.replace("-", "_")
    package = target / module
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(source)
    info = target / f"{module}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.0.1\n")
    (info / "entry_points.txt").write_text(
        f"[genlatent.plugins]\n{module.split('_')[-1]} = {module}:register\n"
    )
    return target


def make_broken_plugin(target: Path, error: str = "boom: needs the missing package foo") -> Path:
    """A distribution ``genlatent-broken`` whose entry point raises on import."""
    return make_plugin(target, "genlatent-broken", f"raise ImportError({error!r})\n")


HALFWAY_SOURCE = """
from genlatent import registry
from genlatent.distributions.priors import StandardNormalPrior


def register():
    registry.priors.add("halfway_prior", StandardNormalPrior)
    registry.priors.add("standard_normal", object, replace=True)
    raise RuntimeError("halfway: the second part needs a newer genlatent")
"""


def make_halfway_plugin(target: Path) -> Path:
    """A distribution ``genlatent-halfway`` whose ``register()`` adds a prior, replaces a
    built-in one, then raises: both must be rolled back."""
    return make_plugin(target, "genlatent-halfway", HALFWAY_SOURCE)


def env_with_path(*folders: Path) -> dict[str, str]:
    """The current environment with ``folders`` prepended to PYTHONPATH (for subprocesses)."""
    env = dict(os.environ)
    old = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    parts = [str(f) for f in folders] + old
    env["PYTHONPATH"] = os.pathsep.join(parts)
    return env
