"""The component registry: registration, lookup, providers, errors with suggestions."""

from __future__ import annotations

import sys
import types
from importlib import metadata

import pytest

from genlatent import registry
from genlatent.errors import GenlatentError, RegistryError


@pytest.fixture
def reg() -> registry.Registry:
    return registry.Registry("widgets")


def test_register_get_names_provider(reg: registry.Registry) -> None:
    @reg.register("alpha")
    class Alpha:
        pass

    reg.add("beta", len)
    assert reg.get("alpha") is Alpha
    assert reg.names() == ["alpha", "beta"]
    assert reg.provider("alpha") == "genlatent"
    assert "alpha" in reg and "gamma" not in reg
    assert len(reg) == 2


def test_duplicate_name_is_an_error_unless_replaced(reg: registry.Registry) -> None:
    reg.add("alpha", int)
    with pytest.raises(RegistryError, match=r"'alpha' is already registered by genlatent"):
        reg.add("alpha", float)
    reg.add("alpha", float, replace=True)
    assert reg.get("alpha") is float
    reg.add("alpha", float)  # registering the very same object again is harmless


def test_unknown_name_lists_known_names_and_closest_match(reg: registry.Registry) -> None:
    for name in ("mixture", "laplace", "standard_normal"):
        reg.add(name, object)
    with pytest.raises(RegistryError) as info:
        reg.get("mixtur")
    message = str(info.value)
    assert "unknown widget 'mixtur'" in message
    assert "did you mean 'mixture'?" in message
    assert "Known: laplace, mixture, standard_normal" in message
    assert "\n" not in message
    assert isinstance(info.value, GenlatentError) and isinstance(info.value, KeyError)


def test_unknown_name_without_close_match_has_no_suggestion(reg: registry.Registry) -> None:
    reg.add("laplace", object)
    with pytest.raises(RegistryError) as info:
        reg.get("zzzzzz")
    assert "did you mean" not in str(info.value)


def test_bad_names_are_rejected(reg: registry.Registry) -> None:
    with pytest.raises(RegistryError):
        reg.register("")
    with pytest.raises(RegistryError):
        reg.register(3)  # type: ignore[arg-type]


def test_providing_attributes_parts_to_a_package(reg: registry.Registry) -> None:
    with registry.providing("my-plugin", "1.2.3"):
        reg.add("gamma", object)
    entry = reg.entry("gamma")
    assert (entry.provider, entry.provider_version) == ("my-plugin", "1.2.3")
    assert reg.provider("gamma") == "my-plugin"


def test_builtin_registries_exist_and_hold_builtin_parts() -> None:
    assert set(registry.REGISTRIES) >= {
        "encoders", "decoders", "priors", "likelihoods", "datasets", "callbacks",
    }
    assert "standard_normal" in registry.priors.names()
    assert registry.priors.provider("standard_normal") == "genlatent"
    assert {"ae", "vae"} <= set(registry.models.names())


def test_get_part_names_the_missing_plugin() -> None:
    with pytest.raises(GenlatentError, match=r"provided by the plugin package 'genlatent-zzz'"):
        registry.get_part("priors", "no_such_prior", provider="genlatent-zzz")
    with pytest.raises(RegistryError, match="unknown prior 'no_such_prior'"):
        registry.get_part("priors", "no_such_prior", provider="genlatent")


def test_entry_point_without_distribution_is_named_after_its_module(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    module = types.ModuleType("loose_parts")
    module.register = lambda: registry.priors.add("loose_prior", object)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "loose_parts", module)
    point = metadata.EntryPoint("loose", "loose_parts:register", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry, "_entry_points", lambda: [point])
    try:
        registry.reset_for_tests()
        assert registry.priors.provider("loose_prior") == "loose_parts"
        assert registry.plugin_versions() == {"loose_parts": None}
    finally:
        monkeypatch.undo()
        registry.reset_for_tests()
    assert "loose_prior" not in registry.priors
