"""A small registry keyed by name, with validated construction.

Every pluggable piece (losses, penalties, clippers, models, datasets, optimisers) lives in
one of these, so the CLI, the config validator and ``steadygan methods`` read the same
source of truth, and a typo in a name or a keyword argument is an error that lists the
valid choices instead of something swallowed by ``**kwargs``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    factory: Callable[..., T]
    summary: str
    paper: str = ""
    info: dict[str, Any] = field(default_factory=dict)  # what the entry is (e.g. a dataset's protocol)

    def parameters(self) -> dict[str, Any]:
        """Keyword parameters the factory accepts, with their defaults (None if required)."""
        sig = inspect.signature(self.factory)
        out: dict[str, Any] = {}
        for p in sig.parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name == "self":
                continue
            out[p.name] = None if p.default is inspect.Parameter.empty else p.default
        return out


class Registry(Generic[T]):
    """Maps names to factories; ``build`` checks the name and every keyword."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, summary: str, paper: str = "",
                 info: dict[str, Any] | None = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries:
                raise KeyError(f"{self.kind} '{name}' is registered twice")
            self._entries[name] = Entry(name, factory, summary, paper, dict(info or {}))
            return factory

        return decorator

    def names(self) -> list[str]:
        return list(self._entries)

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def get(self, name: str) -> Entry[T]:
        if name not in self._entries:
            raise ConfigError(
                f"unknown {self.kind} '{name}'; choose from: {', '.join(self._entries)}"
            )
        return self._entries[name]

    def check_kwargs(self, name: str, kwargs: dict[str, Any]) -> None:
        """Raise ConfigError if ``kwargs`` holds a key the factory does not take."""
        valid = self.get(name).parameters()
        unknown = sorted(set(kwargs) - set(valid))
        if unknown:
            raise ConfigError(
                f"{self.kind} '{name}' has no option {', '.join(repr(u) for u in unknown)}; "
                f"valid options: {', '.join(valid) or '(none)'}"
            )

    def build(self, name: str, **kwargs: Any) -> T:
        self.check_kwargs(name, kwargs)
        try:
            return self.get(name).factory(**kwargs)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError):
                raise
            raise ConfigError(f"{self.kind} '{name}': {exc}") from exc
