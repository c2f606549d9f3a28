"""Networks from the user's own code: ``model.arch=package.module:factory``.

The factory is called as ``factory(sample_shape=(C, H, W) or (D,), z_dim=Z, **options)``,
where options are the ``model.width``, ``model.depth``, ``model.g_norm`` and
``model.d_norm`` that the config sets (an option the factory does not take is an error),
and returns ``(generator, discriminator)`` modules or a :class:`GanPair`. The generator
maps (N, Z) noise to (N, *sample_shape) samples, the discriminator samples to (N,) logits;
both are checked once on two samples when the pair is built. The import path is part of the
run's config, so checkpoints, ``sample``, ``eval`` and ``--resume`` rebuild the same networks
(the module must be importable there too: from the current directory or an installed
package).
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any, Callable

import torch
from torch import nn

from ..core.pair import GanPair
from ..errors import ConfigError

OPTION_KEYS = ("width", "depth", "g_norm", "d_norm")


def is_import_path(arch: str) -> bool:
    """``package.module:factory`` rather than a registered architecture name."""
    return ":" in arch


def load_factory(path: str) -> Callable[..., Any]:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr or ":" in attr:
        raise ConfigError(f"model.arch={path}: an import path is package.module:factory")
    if os.getcwd() not in sys.path and "" not in sys.path:  # as `python -m` would find it
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        parts = module_name.split(".")
        if exc.name not in {".".join(parts[:i]) for i in range(1, len(parts) + 1)}:  # found, but its import failed
            raise ConfigError(f"model.arch={path}: '{module_name}' imports '{exc.name}', which is not "
                              "installed") from exc
        raise ConfigError(f"model.arch={path}: cannot import '{module_name}' ({exc}); run from the folder that "
                          "holds it, or add that folder to PYTHONPATH") from exc
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise ConfigError(f"model.arch={path}: importing '{module_name}' failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        raise ConfigError(f"model.arch={path}: module '{module_name}' has no '{attr}'")
    factory = getattr(module, attr)
    if not callable(factory):
        raise ConfigError(f"model.arch={path}: '{attr}' in '{module_name}' is a {type(factory).__name__}, "
                          "not a function or class")
    return factory


def check_imported_options(path: str, options: dict[str, Any]) -> None:
    """ConfigError unless the factory takes sample_shape, z_dim and every option given."""
    factory = load_factory(path)
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return  # a builtin or C callable: its call will say what it takes
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    for key in ("sample_shape", "z_dim", *options):
        if key not in params:
            what = f"model.{key} does not apply to" if key in options else f"it must take '{key}':"
            hint = f" (--set model.{key}=null)" if key in options else ""
            raise ConfigError(f"model.arch={path}: {what} {path.partition(':')[2]}{inspect.signature(factory)}{hint}")


def build_imported(path: str, sample_shape: tuple[int, ...], z_dim: int, **options: Any) -> GanPair:
    """Call the factory and check what it returned on two samples."""
    given = {k: v for k, v in options.items() if v is not None}
    check_imported_options(path, given)
    try:
        result = load_factory(path)(sample_shape=tuple(sample_shape), z_dim=z_dim, **given)
    except Exception as exc:  # noqa: BLE001 - the user's factory failed (e.g. on another data shape)
        raise ConfigError(f"model.arch={path}: the factory failed for sample_shape={tuple(sample_shape)}, "
                          f"z_dim={z_dim}: {type(exc).__name__}: {exc}") from exc
    if isinstance(result, GanPair):
        pair = result
    elif isinstance(result, (tuple, list)) and len(result) == 2 and all(isinstance(m, nn.Module) for m in result):
        pair = GanPair(result[0], result[1])
    else:
        raise ConfigError(f"model.arch={path}: the factory returned {type(result).__name__}; it must return "
                          "(generator, discriminator) modules or a GanPair")
    if pair.conditional:
        raise ConfigError(f"model.arch={path}: return an unconditional pair; model.conditional=true adds the "
                          "class conditioning")
    _probe(path, pair, tuple(sample_shape), z_dim)
    return pair


@torch.no_grad()
def _probe(path: str, pair: GanPair, sample_shape: tuple[int, ...], z_dim: int) -> None:
    """Two samples through both networks (eval mode: no BatchNorm statistics move, and a
    noise generator of its own: the training RNG does not move either)."""
    G, D = pair.generator, pair.discriminator
    modes = G.training, D.training
    G.eval(), D.eval()
    try:
        z = torch.randn(2, z_dim, generator=torch.Generator().manual_seed(0))
        x = G(z)
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (2, *sample_shape):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ConfigError(f"model.arch={path}: the generator maps (2, {z_dim}) noise to {got}; the data needs "
                              f"{(2, *sample_shape)}")
        logits = D(x)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2,):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ConfigError(f"model.arch={path}: the discriminator returns {got} for 2 samples; it must return "
                              "one logit per sample, shape (2,) (e.g. .squeeze(1) after a Linear(..., 1))")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's networks failed on the data's shape
        raise ConfigError(f"model.arch={path}: the networks fail on samples of shape {sample_shape}: "
                          f"{type(exc).__name__}: {exc}") from exc
    finally:
        G.train(modes[0]), D.train(modes[1])
