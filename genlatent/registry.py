"""Registries of interchangeable parts, extended by plugins.

One small generic :class:`Registry` and one instance per kind of part::

    from genlatent import registry

    @registry.priors.register("my_prior")
    class MyPrior(Prior): ...

    registry.priors.get("my_prior")      # the class
    registry.priors.names()              # sorted names, built-ins and plugins
    registry.priors.provider("my_prior") # which package provided it

Built-in parts are imported, and plugins (entry-point group ``genlatent.plugins``) are
discovered, lazily on the first lookup, so ``import genlatent`` stays fast. A plugin that
fails (on import or in its ``register()``) is rolled back: whatever it registered before
failing is removed, so no half-registered plugin is ever used. Its one-line reason is kept in
:func:`plugin_errors` (shown by ``genlatent plugins`` and named in every failed lookup) and its
traceback in :func:`plugin_tracebacks` (logged at DEBUG level, which ``genlatent --debug``
shows); nothing is printed when it fails, and every other part keeps working.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Generic, TypeVar

from .errors import PluginError, RegistryError

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "genlatent.plugins"
BUILTIN_PROVIDER = "genlatent"

# Modules whose import registers the built-in parts.
_BUILTIN_MODULES = (
    "genlatent.distributions",
    "genlatent.networks",
    "genlatent.models",
    "genlatent.data",
    "genlatent.training.callbacks",
)

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """A registered part: the object, and the package (and version) that provided it."""

    name: str
    obj: T
    provider: str
    provider_version: str | None


class Registry(Generic[T]):
    """A name -> part mapping for one kind of part (encoders, priors, ...)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, replace: bool = False) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``.

        Registering a name twice is an error unless ``replace=True``.
        """
        if not isinstance(name, str) or not name:
            raise RegistryError(f"{self.kind} names must be non-empty strings, got {name!r}")

        def decorator(obj: T) -> T:
            self.add(name, obj, replace=replace)
            return obj

        return decorator

    def add(self, name: str, obj: T, *, replace: bool = False) -> None:
        """Register ``obj`` under ``name`` (the non-decorator form of :meth:`register`)."""
        provider, version = _current_provider()
        old = self._entries.get(name)
        if old is not None and not replace and old.obj is not obj:
            raise RegistryError(
                f"{self.kind} {name!r} is already registered by {old.provider}; "
                f"pass replace=True to replace it"
            )
        self._entries[name] = Entry(name, obj, provider, version)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (mainly for tests)."""
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The part registered as ``name``; unknown names list the known ones."""
        return self.entry(name).obj

    def entry(self, name: str) -> Entry[T]:
        """The :class:`Entry` for ``name`` (part, provider, provider version)."""
        ensure_loaded()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(self._unknown_message(name)) from None

    def provider(self, name: str) -> str:
        """The package that provided ``name``."""
        return self.entry(name).provider

    def names(self) -> list[str]:
        """Sorted names of every registered part of this kind."""
        ensure_loaded()
        return sorted(self._entries)

    def entries(self) -> list[Entry[T]]:
        """Every entry of this kind, sorted by name."""
        ensure_loaded()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: object) -> bool:
        ensure_loaded()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        ensure_loaded()
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"

    def _unknown_message(self, name: str) -> str:
        known = sorted(self._entries)
        msg = f"unknown {self.kind[:-1] if self.kind.endswith('s') else self.kind} {name!r}"
        close = difflib.get_close_matches(str(name), known, n=1, cutoff=0.5)
        if close:
            msg += f"; did you mean {close[0]!r}?"
        msg += f" Known: {', '.join(known) if known else '(none)'}"
        failed = sorted(_plugin_errors)
        if failed:
            msg += f" (plugins that failed to load: {', '.join(failed)}; see genlatent plugins)"
        return msg


encoders: Registry[Any] = Registry("encoders")
decoders: Registry[Any] = Registry("decoders")
posteriors: Registry[Any] = Registry("posteriors")
priors: Registry[Any] = Registry("priors")
likelihoods: Registry[Any] = Registry("likelihoods")
models: Registry[Any] = Registry("models")
datasets: Registry[Any] = Registry("datasets")
callbacks: Registry[Any] = Registry("callbacks")

REGISTRIES: dict[str, Registry[Any]] = {
    r.kind: r
    for r in (encoders, decoders, posteriors, priors, likelihoods, models, datasets, callbacks)
}


# --------------------------------------------------------------------------- loading

_lock = threading.RLock()
_state = {"loaded": False, "loading": False}
_provider_stack: list[tuple[str, str | None]] = []
_plugin_errors: dict[str, str] = {}
_plugin_tracebacks: dict[str, str] = {}
_plugin_versions: dict[str, str | None] = {}


def _current_provider() -> tuple[str, str | None]:
    if _provider_stack:
        return _provider_stack[-1]
    from ._version import __version__

    return BUILTIN_PROVIDER, __version__


@contextlib.contextmanager
def providing(name: str, version: str | None = None) -> Iterator[None]:
    """Attribute every part registered inside this block to package ``name``."""
    _provider_stack.append((name, version))
    try:
        yield
    finally:
        _provider_stack.pop()


def ensure_loaded() -> None:
    """Import the built-in parts and discover plugins, once per process."""
    if _state["loaded"] or _state["loading"]:
        return
    with _lock:
        if _state["loaded"] or _state["loading"]:
            return
        _state["loading"] = True
        try:
            for module in _BUILTIN_MODULES:
                importlib.import_module(module)
            _load_plugins()
        finally:
            _state["loading"] = False
        _state["loaded"] = True


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _provider_of(ep: metadata.EntryPoint) -> tuple[str, str | None]:
    """The distribution that declares ``ep`` and its version; an entry point without one
    (made by hand, or from a bare ``.egg-link``) is named after its top-level module."""
    dist = getattr(ep, "dist", None)
    if dist is not None and dist.name:
        return dist.name, dist.version
    return ep.value.split(":")[0].split(".")[0].strip(), None


def _snapshot() -> dict[str, dict[str, Entry[Any]]]:
    return {kind: dict(r._entries) for kind, r in REGISTRIES.items()}


def _restore(snapshot: dict[str, dict[str, Entry[Any]]]) -> None:
    for kind, entries in snapshot.items():
        REGISTRIES[kind]._entries = entries


def _load_plugins() -> None:
    seen: set[str] = set()
    for ep in _entry_points():
        provider, version = _provider_of(ep)
        key = f"{provider}:{ep.name}"
        if key in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(key)
        before = _snapshot()
        try:
            with providing(provider, version):
                target = ep.load()
                if callable(target):
                    target()
        except Exception as exc:  # a broken plugin must not break the others
            _restore(before)  # nothing of a half-registered plugin stays
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
            _plugin_errors[provider] = f"entry point {ep.name!r} ({ep.value}): {reason}"
            _plugin_tracebacks[provider] = traceback.format_exc()
            log.debug("genlatent plugin %s failed to load and was skipped", provider, exc_info=True)
            continue
        _plugin_versions[provider] = version


def plugin_errors() -> dict[str, str]:
    """Plugins that failed to load: ``{distribution name: one-line reason}``."""
    ensure_loaded()
    return dict(sorted(_plugin_errors.items()))


def plugin_tracebacks() -> dict[str, str]:
    """Plugins that failed to load: ``{distribution name: the full traceback}``."""
    ensure_loaded()
    return dict(sorted(_plugin_tracebacks.items()))


def plugin_versions() -> dict[str, str | None]:
    """Plugins that loaded: ``{distribution name: version}``."""
    ensure_loaded()
    return dict(_plugin_versions)


def reset_for_tests() -> None:
    """Forget plugins and load them again on the next lookup (tests only)."""
    with _lock:
        for registry in REGISTRIES.values():
            for name in [n for n, e in registry._entries.items() if e.provider != BUILTIN_PROVIDER]:
                del registry._entries[name]
        _plugin_errors.clear()
        _plugin_tracebacks.clear()
        _plugin_versions.clear()
        _state["loaded"] = False
        ensure_loaded()


def get_part(kind: str, name: str, provider: str | None = None) -> Any:
    """Look up a part by registry kind; if absent and ``provider`` (the package that provided
    it when a model was saved) is a plugin, say which plugin is missing."""
    registry = REGISTRIES[kind]
    try:
        return registry.get(name)
    except RegistryError:
        if provider and provider != BUILTIN_PROVIDER:
            hint = f"it was provided by the plugin package {provider!r}"
            if provider in _plugin_errors:
                hint += f", which failed to load ({_plugin_errors[provider]})"
            else:
                hint += f"; install it (pip install {provider})"
            raise PluginError(f"{kind[:-1]} {name!r} is not available: {hint}") from None
        raise
