"""``steadygan methods``: every loss, penalty, clipper, augmentation, model, optimiser, dataset and extractor."""

from __future__ import annotations

import argparse

MODEL_OPTIONS = (
    ("model.conditional=true", "class-conditional pair on labelled data: G gets a class embedding joined to z "
                               "(Mirza & Osindero 2014), D a projection head (Miyato & Koyama 2018); "
                               "samples and grids then take a class (sample --class K)"),
    ("model.spectral_norm=true", "spectral normalisation on every D layer (Miyato et al. 2018)"),
    ("model.g_norm, d_norm", "none | batch | layer | instance (default: the architecture's)"),
    ("model.z_dim", "latent size (default 100)"),
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser("methods", help="list losses, penalties, clippers, models, optimisers and datasets")
    p.set_defaults(func=cmd_methods)
    return p


def cmd_methods(args: argparse.Namespace) -> int:
    from ..core.augment import AUGMENTS
    from ..core.clipping import CLIPPERS
    from ..core.losses import LOSSES
    from ..core.optim import OPTIMIZERS
    from ..core.penalties import PENALTIES
    from ..data import DATASETS
    from ..metrics import EXTRACTORS
    from ..models import MODELS

    sections = (("losses (loss=NAME)", LOSSES),
                ("gradient penalties (d.penalties=[SPEC,...] / g.penalties=[SPEC,...])", PENALTIES),
                ("clippers (d.clip=SPEC / g.clip=SPEC)", CLIPPERS),
                ("augmentations of D's inputs (train.augment=SPEC)", AUGMENTS),
                ("models (model.arch=NAME, or package.module:factory for your own networks: see README)", MODELS),
                ("optimisers (d.optimizer / g.optimizer)", OPTIMIZERS), ("datasets (data.name=NAME)", DATASETS),
                ("feature extractors for metrics (steadygan eval --extractor NAME / train.eval_extractor)", EXTRACTORS))
    for title, registry in sections:
        print(f"{title}:")
        for e in registry.entries():
            print(f"  {e.name:<15} {e.summary}")
            details = []
            if registry is PENALTIES:
                cls = e.factory
                details.append(f"for {'+'.join(cls.players).upper()}; {cls.weight_alias}={cls.default_weight:g}")
                details += [f"{k}={v}" for k, v in e.parameters().items() if k != "weight"]
            elif registry is CLIPPERS or registry is AUGMENTS:
                details += [f"{k}={v}" for k, v in e.parameters().items()]
            elif registry is MODELS:
                details += [f"model.{k}={v}" for k, v in e.parameters().items() if k in ("width", "depth")]
            elif registry is OPTIMIZERS:
                details += [f"{k}={v}" for k, v in e.parameters().items() if k not in ("params", "lr")]
            if details:
                print(f"  {'':<15} options: {', '.join(details)}")
            if e.paper:
                print(f"  {'':<15} {e.paper}")
        print()
    print("model options (every architecture):")
    for key, text in MODEL_OPTIONS:
        print(f"  {key:<22} {text}")
    print()
    print("A spec is NAME or NAME:key=value,... e.g. r1:gamma=10,every=16 or value:eps=0.01")
    return 0
