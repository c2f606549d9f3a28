"""Conditional GANs: labels through every dataset kind, the batch, the pair and the penalties."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from steadygan.core.batch import Batch
from steadygan.core.clipping import build_clipper
from steadygan.core.losses import build_loss
from steadygan.core.penalties import INPUT_GRADIENT_PENALTIES, build_penalty
from steadygan.core.step import Player, d_step, g_step
from steadygan.data import DataError, InMemoryData, load_dataset
from steadygan.errors import ConfigError
from steadygan.models import GanPair, ProjectionDiscriminator, build_models
from steadygan.training.build import build_pair, load_config


def _cifar(root, n=12):
    root.mkdir()
    rng = np.random.default_rng(0)
    labels = [int(x) for x in rng.integers(0, 10, n)]
    labels[0], labels[1] = 0, 9  # both ends present: 10 classes
    with open(root / "data_batch_1", "wb") as f:
        pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": labels}, f)
    with open(root / "test_batch", "wb") as f:
        pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": labels}, f)
    return labels


def _folder(root, classes=("cats", "dogs", "owls")):
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(2):
            Image.new("L", (20, 20), 40 * k + i).save(root / cls / f"{i}.png")


def test_every_dataset_kind_describes_itself(tmp_path, idx_dir):
    idx = load_dataset("idx", str(idx_dir))
    assert idx.info.kind == "image" and idx.info.sample_shape == (1, 28, 28)
    assert idx.info.num_classes == int(idx.labels.max()) + 1 and idx.info.protocol == "image"

    labels = _cifar(tmp_path / "cifar")
    cifar = load_dataset("cifar10", str(tmp_path / "cifar"), resolution=32, channels=3)
    assert cifar.info.num_classes == 10 and cifar.info.sample_shape == (3, 32, 32)
    assert cifar.labels.tolist() == labels

    _folder(tmp_path / "folder")
    folder = load_dataset("folder", str(tmp_path / "folder"), resolution=16)
    assert folder.info.num_classes == 3 and folder.labels.tolist() == [0, 0, 1, 1, 2, 2]
    (tmp_path / "flat").mkdir()
    Image.new("L", (20, 20)).save(tmp_path / "flat" / "a.png")
    flat = load_dataset("folder", str(tmp_path / "flat"), resolution=16)
    assert flat.labels is None and flat.info.num_classes == 0

    stacked = load_dataset("stacked", str(idx_dir), channels=3)
    assert stacked.info.protocol == "stacked" and stacked.info.sample_shape == (3, 28, 28)
    assert stacked.info.num_classes == int(stacked.labels.max()) + 1

    ring = load_dataset("ring8", toy_samples=500)
    assert ring.info.kind == "points" and ring.info.protocol == "mixture" and ring.info.num_classes == 8


def test_folder_with_loose_images_beside_class_folders_is_unlabelled(tmp_path):
    _folder(tmp_path)
    Image.new("L", (20, 20)).save(tmp_path / "loose.png")
    with pytest.warns(UserWarning, match="beside the class sub-folders; the folder is read as unlabelled"):
        data = load_dataset("folder", str(tmp_path), resolution=16)
    assert data.labels is None and len(data) == 7
    with pytest.raises(ConfigError, match="needs labelled data"):
        build_pair(load_config(None, ["model.conditional=true"]), data.info)


def test_batches_carry_the_labels_of_their_samples(idx_dir):
    data = load_dataset("idx", str(idx_dir))
    index = torch.tensor([5, 0, 17, 3])
    batch = data.batch(index, labels=True)
    assert torch.equal(batch.y, data.labels[index]) and batch.y.dtype == torch.int64
    assert torch.equal(batch.x, data.samples[index].float() / 127.5 - 1)
    assert data.batch(index).y is None  # unconditional training takes no labels
    with pytest.raises(DataError, match="no labels"):
        InMemoryData(data.samples, None, "x").batch(index, labels=True)


def test_conditional_needs_labelled_data(tmp_path):
    (tmp_path / "flat").mkdir()
    Image.new("L", (28, 28)).save(tmp_path / "flat" / "a.png")
    data = load_dataset("folder", str(tmp_path / "flat"))
    cfg = load_config(None, ["model.conditional=true"])
    with pytest.raises(ConfigError, match="needs labelled data"):
        build_pair(cfg, data.info)


@pytest.mark.parametrize("arch, shape", [("dcgan", (1, 28, 28)), ("dcgan", (3, 32, 32)), ("dcgan", (3, 64, 64)),
                                         ("seed-gc", (1, 28, 28)), ("seed-gc", (3, 64, 64)), ("mlp", (2,))])
def test_conditional_pairs_take_labels_and_keep_shapes(arch, shape):
    torch.manual_seed(0)
    pair = build_models(arch, shape, 8, num_classes=5, spectral_norm=True,
                        **({"width": 4} if arch == "dcgan" else {}))
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 4, 2])
    x = pair.generate(z, y)
    assert x.shape == (4, *shape)
    assert pair.score(x, y).shape == (4,)
    with pytest.raises(ValueError, match="pass the labels"):
        pair.generate(z)
    # The class changes the sample: the label reaches G.
    assert not torch.allclose(pair.generate(z, torch.zeros(4, dtype=torch.long)),
                              pair.generate(z, torch.full((4,), 3)))


class LinearFeatures(nn.Module):
    """h(x) = x flattened, head = w.h + b: with a projection head D(x, y) = (w + e_y).x + b."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.head = nn.Linear(dim, 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class LabelBlindGenerator(nn.Module):
    """A conditional-signature generator that ignores the label (the penalties' closed forms
    do not depend on where the samples come from)."""

    def __init__(self, z_dim: int, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(z_dim, int(np.prod(shape))), nn.Unflatten(1, shape))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.net(z)


CLOSED_FORMS = {  # the penalty value for per-sample gradient norms g_i = ||w + e_{y_i}||
    "r1": lambda g: 0.5 * (g ** 2).mean(), "r2": lambda g: 0.5 * (g ** 2).mean(),
    "zero-gp": lambda g: (g ** 2).mean(), "wgan-gp": lambda g: ((g - 1) ** 2).mean(),
    "dragan": lambda g: ((g - 1) ** 2).mean(),
}


@pytest.mark.parametrize("name", INPUT_GRADIENT_PENALTIES)
def test_input_gradient_penalties_on_a_conditional_d_match_closed_forms(name):
    """The gradient is taken with respect to the image with the label fixed: for the linear
    projection D it is w + e_y at every point, so each penalty has a closed form."""
    assert set(CLOSED_FORMS) == set(INPUT_GRADIENT_PENALTIES)
    torch.manual_seed(0)
    dim, k = 2 * 3 * 3, 4
    D = ProjectionDiscriminator(LinearFeatures(dim), k)
    with torch.no_grad():
        D.embedding.weight.normal_(0, 0.5)
    G_cond = LabelBlindGenerator(5, (2, 3, 3))
    d = Player("D", D, torch.optim.SGD(D.parameters(), lr=0.0), [build_penalty({"name": name, "weight": 1.0}, "d")],
               build_clipper(None))
    g = Player("G", G_cond, torch.optim.SGD(G_cond.parameters(), lr=0.0), [], build_clipper(None))
    y = torch.tensor([0, 1, 2, 3, 3, 1])
    batch = Batch(torch.randn(6, 2, 3, 3), y)
    stats = d_step(d, g, build_loss("wasserstein"), batch, torch.randn(6, 5), step=0)
    norms = (D.base.head.weight[0] + D.embedding.weight[y]).norm(dim=1).detach()
    expected = CLOSED_FORMS[name](norms).item()
    assert stats[f"Penalty/D/{name}"].item() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("d_penalties", [[], [{"name": "consensus"}]])  # consensus: G runs with its graph in the D step
def test_conditional_step_generates_for_the_batch_labels(d_penalties):
    from steadygan.core.penalties import build_penalty

    seen = []

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, z, y):
            seen.append(y.clone())
            return self.lin(z)

    D = ProjectionDiscriminator(LinearFeatures(2), 3)
    G = Recorder()
    d = Player("D", D, torch.optim.SGD(D.parameters(), lr=0.1), [build_penalty(p, "d") for p in d_penalties],
               build_clipper(None))
    g = Player("G", G, torch.optim.SGD(G.parameters(), lr=0.1), [], build_clipper(None))
    batch = Batch(torch.randn(4, 2), torch.tensor([2, 0, 1, 2]))
    d_step(d, g, build_loss("non-saturating"), batch, torch.randn(4, 3), step=0)
    g_step(g, d, build_loss("non-saturating"), batch, torch.randn(4, 3), step=0)
    assert len(seen) == 2 and all(torch.equal(s, batch.y) for s in seen)


def test_unconditional_pair_refuses_labels():
    pair = GanPair(nn.Linear(2, 2), nn.Linear(2, 1))
    with pytest.raises(ValueError, match="^this pair is unconditional: it takes no labels$"):
        pair.generate(torch.randn(1, 2), torch.tensor([0]))


def test_class_embeddings_start_on_their_documented_scales():
    torch.manual_seed(0)
    pair = build_models("dcgan", (1, 28, 28), 8, width=4, num_classes=10)
    g_std = pair.generator.embedding.weight.std().item()
    d_std = pair.discriminator.embedding.weight.std().item()
    assert 0.85 < g_std < 1.15      # on the scale of z ~ N(0, 1): 320 draws of N(0, 1)
    assert abs(pair.generator.embedding.weight.mean().item()) < 0.2
    assert 0.015 < d_std < 0.025    # DCGAN's N(0, 0.02): D starts near its unconditional self
    assert abs(pair.discriminator.embedding.weight.mean().item()) < 0.005


def test_projection_needs_features_and_a_linear_head():
    class NoHead(nn.Module):
        def embed(self, x):
            return x

    class NoEmbed(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(2, 1)

    for base in (NoHead(), NoEmbed()):
        with pytest.raises(TypeError,
                           match=f"^{type(base).__name__} has no embed\\(\\)/head: cannot add a projection head"):
            ProjectionDiscriminator(base, 3)


# --- conditional batch normalisation (model.g_conditioning=cbn) ----------------------------------


def test_class_batch_norm_is_batch_norm_with_each_class_gain_and_bias():
    from steadygan.models import ClassBatchNorm

    norm = ClassBatchNorm(nn.BatchNorm2d(3), num_classes=2)
    with torch.no_grad():
        norm.gain.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]]))
        norm.bias.weight.copy_(torch.tensor([[0.0, 1.0, 0.0], [-1.0, -1.0, -1.0]]))
    x, y = torch.randn(4, 3, 5, 5), torch.tensor([0, 1, 1, 0])
    norm.labels = y
    plain = nn.functional.batch_norm(x, None, None, training=True)  # (x - batch mean) / batch std, per channel
    gain, bias = norm.gain.weight[y][:, :, None, None], norm.bias.weight[y][:, :, None, None]
    torch.testing.assert_close(norm(x), plain * gain + bias)
    assert not norm.norm.affine and norm.norm.num_features == 3
    norm.labels = None
    with pytest.raises(RuntimeError, match="needs the batch's labels"):
        norm(x)


def test_a_cbn_generator_conditions_every_batch_norm_and_takes_z_alone():
    from steadygan.models import CbnGenerator, ClassBatchNorm

    pair = build_models("dcgan", (1, 28, 28), 8, width=8, num_classes=10, g_conditioning="cbn")
    G = pair.generator
    assert isinstance(G, CbnGenerator)
    norms = [m for m in G.modules() if isinstance(m, ClassBatchNorm)]
    assert norms and not any(type(m) is nn.BatchNorm2d for m in G.base.modules()
                             if not any(m is n.norm for n in norms))  # every BatchNorm is a class's now
    z = torch.randn(6, 8)
    G.eval()
    a, b = G(z, torch.full((6,), 2)), G(z, torch.full((6,), 7))
    assert a.shape == (6, 1, 28, 28) and torch.equal(a, b)  # gains start at 1, biases at 0: classes alike
    with torch.no_grad():
        norms[0].bias.weight[7] += 1.0
    assert not torch.equal(G(z, torch.full((6,), 7)), a) and torch.equal(G(z, torch.full((6,), 2)), a)
    assert all(m.labels is None for m in norms)  # nothing of the batch kept after the call
    embed = build_models("dcgan", (1, 28, 28), 8, width=8, num_classes=10)
    assert embed.generator.base.project[0].in_features == 8 + 32 and G.base.project[0].in_features == 8


def test_cbn_is_refused_where_it_could_do_nothing():
    with pytest.raises(ConfigError, match="has none: set model.g_norm=batch, or model.g_conditioning=embed$"):
        build_models("dcgan", (1, 28, 28), 8, width=8, g_norm="layer", num_classes=3, g_conditioning="cbn")
    with pytest.raises(ConfigError, match="^model.g_conditioning=cbn conditions a class-conditional generator"):
        load_config(None, ["model.g_conditioning=cbn"])
    with pytest.raises(ConfigError, match="g_conditioning: expected one of embed, cbn|must be embed or cbn"):
        load_config(None, ["model.conditional=true", "model.g_conditioning=film"])


def test_a_cbn_run_trains_resumes_and_samples(tmp_path, idx_dir, image_cfg, resume_matches_straight):
    sets = ["model.conditional=true", "model.g_conditioning=cbn", "train.ema=0.9", "model.d_norm=none"]
    resume_matches_straight(image_cfg(tmp_path, idx_dir, *sets), image_cfg(tmp_path, idx_dir, *sets, "train.steps=3"))


# --- the class head (the aux-classifier penalty) ----------------------------------------------------

def test_a_class_head_is_built_only_when_asked_and_classifies_ds_features():
    torch.manual_seed(0)
    plain = build_models("dcgan", (1, 28, 28), 8, width=8, num_classes=10)
    headed = build_models("dcgan", (1, 28, 28), 8, width=8, num_classes=10, class_head=True)
    extra = set(headed.discriminator.state_dict()) - set(plain.discriminator.state_dict())
    assert extra == {"class_head.weight", "class_head.bias"}  # without it, a saved D loads as before
    assert set(plain.discriminator.state_dict()) <= set(headed.discriminator.state_dict())
    D = headed.discriminator
    x = torch.randn(5, 1, 28, 28)
    D.eval()
    logits = D.classify(x)
    assert logits.shape == (5, 10)
    torch.testing.assert_close(logits, D.base.embed(x) @ D.class_head.weight.T + D.class_head.bias)
    with pytest.raises(RuntimeError, match="no class head"):
        plain.discriminator.classify(x)
    with pytest.raises(ConfigError, match="^a class head classifies the samples of a class-conditional model"):
        build_models("dcgan", (1, 28, 28), 8, width=8, class_head=True)
