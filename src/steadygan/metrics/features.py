"""Feature extractors for the distribution metrics, by name.

- ``classifier``: a small CNN trained here on the labelled train split of the run's
  dataset; features are its 128-d penultimate layer. Domain-specific features are what
  makes FID-like numbers meaningful on Fashion-MNIST-like data (an ImageNet network sees
  28x28 grayscale clothes as blurry noise), and training it takes about a minute on CPU.
  It is cached on disk, keyed by what determines its weights.
- ``inception``: the FID InceptionV3 (2048-d pool features), from pytorch-fid's weights
  file, for numbers comparable with the literature. Never downloaded.
- ``pixels`` / ``identity``: the flattened samples (2-D toy data, sanity checks).

Every extractor can say what it is (``record()``: name, sha256 of its weights, feature
size, and for the classifier its test accuracy), so a metrics file names the exact
network its numbers came from.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from .. import progress
from ..data import InMemoryData, dataset_protocol, load_dataset, to_float_images
from ..errors import ConfigError
from ..files import CACHE_ENV, atomic_write, cache_dir, file_sha256  # noqa: F401 - CACHE_ENV, file_sha256: this module's API
from ..registry import Registry
from .inception import FID_WEIGHTS_NAME, FIDInceptionV3, to_unit_range
from .modes import predict_triples

CLASSIFIER_ARCH = "smallcnn"
CLASSIFIER_VERSION = 1   # bump when the architecture or the training recipe changes


# --- hashing ---------------------------------------------------------------------------------

def state_dict_sha256(state: dict[str, torch.Tensor]) -> str:
    """sha256 over (name, dtype, shape, raw bytes) of every tensor, in sorted name order.

    Independent of how the weights were serialised, so a retrained network with the same
    weights and a file with those weights hash alike.
    """
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def dataset_fingerprint(data: InMemoryData) -> str:
    """sha256 of the samples' shape and bytes and of the labels (as int64)."""
    h = hashlib.sha256()
    h.update(f"{tuple(data.samples.shape)}|{data.samples.dtype}|".encode())
    # In chunks (the same bytes in the same order): a memory-mapped set is never copied whole.
    for chunk in data.samples.split(4096):
        h.update(chunk.contiguous().numpy().tobytes())
    if data.labels is not None:
        h.update(b"labels|")
        h.update(data.labels.to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


# --- the extractor interface -----------------------------------------------------------------

def to_model_input(samples: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float in [-1, 1]; float samples (generator output) unchanged."""
    return to_float_images(samples) if samples.dtype == torch.uint8 else samples.float()


class FeatureExtractor:
    """Maps samples (N, ...) to features (N, D), float32 on the CPU.

    Networks run in eval mode (BatchNorm uses its stored statistics), so each sample's
    features do not depend on the other samples in its batch: results are batch-size
    independent up to floating-point rounding. On CUDA, PyTorch's default lets cuDNN
    convolutions use TF32, so GPU features differ from CPU ones at the 1e-4..1e-3
    relative level (far below the sampling noise of any metric here).
    """

    def __init__(self, name: str, model: nn.Module | None, feature_dim: int | None,
                 info: dict[str, Any] | None = None, device: str | torch.device = "cpu",
                 default_batch_size: int = 256, input_shape: tuple[int, ...] | None = None) -> None:
        self.name = name
        self.device = torch.device(device)
        self.model = None if model is None else model.to(self.device).eval()
        self.feature_dim = feature_dim
        self.info = dict(info or {})
        self.default_batch_size = default_batch_size
        self.input_shape = input_shape
        state = {} if model is None else model.state_dict()
        self.weights_sha256 = state_dict_sha256(state)

    def prepare(self, samples: torch.Tensor) -> torch.Tensor:
        """One batch as the network takes it (default: uint8 images scaled to [-1, 1])."""
        return to_model_input(samples)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Features of one prepared batch already on the device."""
        assert self.model is not None
        return self.model(x)

    def _check(self, samples: torch.Tensor) -> None:
        if self.input_shape is not None and tuple(samples.shape[1:]) != self.input_shape:
            raise ConfigError(f"extractor '{self.name}' expects samples of shape {self.input_shape} "
                              f"(got {tuple(samples.shape[1:])}); build it for this data's resolution/channels")

    @torch.no_grad()
    def __call__(self, samples: torch.Tensor, batch_size: int | None = None) -> torch.Tensor:
        self._check(samples)
        batch_size = batch_size or self.default_batch_size
        out = [self.embed(self.prepare(chunk.to(self.device))).float().cpu()
               for chunk in samples.split(batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.feature_dim or 0)

    def record(self) -> dict[str, Any]:
        """What a metrics file stores about the extractor."""
        return {"name": self.name, "weights_sha256": self.weights_sha256,
                "feature_dim": self.feature_dim, **self.info}


class FlattenExtractor(FeatureExtractor):
    """Identity features: samples flattened (images scaled to [-1, 1])."""

    def __init__(self, name: str) -> None:
        super().__init__(name, None, None, default_batch_size=8192)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


EXTRACTORS: Registry[Callable[..., FeatureExtractor]] = Registry("feature extractor")


@EXTRACTORS.register("pixels", summary="flattened samples, images scaled to [-1, 1]")
def _pixels() -> FeatureExtractor:
    return FlattenExtractor("pixels")


@EXTRACTORS.register("identity", summary="the samples themselves (2-D toy points)")
def _identity() -> FeatureExtractor:
    return FlattenExtractor("identity")


def build_extractor(name: str, **kwargs: Any) -> FeatureExtractor:
    """An extractor by registry name; unknown names or options are ConfigErrors."""
    return EXTRACTORS.build(name, **kwargs)


# --- the dataset classifier ------------------------------------------------------------------

class SmallCNN(nn.Module):
    """conv32-BN-ReLU-pool, conv64-BN-ReLU-pool, 128-d ReLU layer (the features), linear head.

    BatchNorm makes three epochs enough for >90% on Fashion-MNIST; in eval mode it is a
    fixed affine map, so features stay per-sample. ``feature_scale`` (set once after
    training, stored with the weights) scales the features to mean ||f||^2 / d = 1 on the
    training data: FID and the k-NN metrics do not care, but KID's kernel (x.y/d + 1)^3 is
    not scale-invariant and turns noisy on raw activations (||f||^2/d ~ 10 here).
    """

    def __init__(self, channels: int = 1, n_classes: int = 10, feature_dim: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
            # 7x7 at 28 px (a no-op there); other resolutions keep the same layer sizes.
            nn.AdaptiveAvgPool2d(7), nn.Flatten(),
            nn.Linear(64 * 49, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)
        self.register_buffer("feature_scale", torch.ones(()))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) * self.feature_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


@torch.no_grad()
def classifier_accuracy(model: nn.Module, data: InMemoryData, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for images, labels in zip(data.samples.split(batch_size), data.labels.split(batch_size)):
        correct += int((model(to_model_input(images)).argmax(1) == labels).sum())
    return correct / len(data)


def train_classifier(train: InMemoryData, test: InMemoryData | None, epochs: int = 3, batch_size: int = 128,
                     lr: float = 2e-3, seed: int = 0) -> tuple[SmallCNN, dict[str, Any]]:
    """Train a SmallCNN on ``train`` (Adam, one-cycle schedule); report accuracy on ``test``.

    Deterministic given ``seed``: initialisation runs under a forked global RNG (so the
    caller's RNG state, e.g. a training run's, is left exactly as it was) and batches come
    from a private generator. Afterwards ``feature_scale`` is fitted on up to 10,000
    training samples (see :class:`SmallCNN`).
    """
    if train.labels is None:
        raise ConfigError(f"dataset '{train.name}' has no labels: the 'classifier' extractor needs a "
                          "labelled train split; use another extractor: `eval --extractor pixels` (or inception "
                          "with its weights), in training train.eval_extractor=pixels")
    n_classes = max(int(train.labels.max()) + 1, 2)
    steps_per_epoch = max(len(train) // batch_size, 1)
    start = time.perf_counter()
    # manual_seed reseeds every GPU too: fork them all, or a process that trains the classifier
    # (in a distributed run, only one) would leave its GPU streams unlike the others'.
    gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=gpus):
        torch.manual_seed(seed)
        model = SmallCNN(train.samples.shape[1], n_classes)
        opt = torch.optim.Adam(model.parameters(), lr)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
        g = torch.Generator().manual_seed(seed)
        model.train()
        with progress.bar(epochs * steps_per_epoch, "feature classifier") as shown:
            for _ in range(epochs):
                perm = torch.randperm(len(train), generator=g)
                for i in range(steps_per_epoch):
                    idx = perm[i * batch_size:(i + 1) * batch_size]
                    loss = F.cross_entropy(model(to_model_input(train.samples[idx])), train.labels[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    shown.update()
        model.eval()
        with torch.no_grad():
            sample = train.samples[torch.randperm(len(train), generator=g)[:10_000]]
            feats = torch.cat([model.body(to_model_input(c)) for c in sample.split(1000)])
            mean_sq = feats.pow(2).sum(1).mean() / feats.shape[1]
            if mean_sq > 0:
                model.feature_scale.fill_(float(mean_sq.rsqrt()))
    seconds = time.perf_counter() - start
    info = {"train_seconds": round(seconds, 2), "train_samples": len(train),
            "test_accuracy": None if test is None or test.labels is None else classifier_accuracy(model, test),
            "test_samples": None if test is None else len(test)}
    return model, info


def default_cache_dir() -> Path:
    """$STEADYGAN_CACHE/extractors if that variable is set, else ~/.cache/steadygan/extractors."""
    return cache_dir("extractors")


class ClassifierExtractor(FeatureExtractor):
    """The SmallCNN's penultimate layer; ``predict`` gives its class decisions."""

    def __init__(self, model: SmallCNN, info: dict[str, Any], device: str | torch.device = "cpu") -> None:
        channels, resolution = info["channels"], info["resolution"]
        super().__init__("classifier", model, model.head.in_features, info, device,
                         input_shape=(channels, resolution, resolution))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)

    @torch.no_grad()
    def predict(self, samples: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """Class index per sample (e.g. per channel of Stacked-MNIST, see modes.predict_triples)."""
        self._check(samples)
        return torch.cat([self.model(to_model_input(c).to(self.device)).argmax(1).cpu()
                          for c in samples.split(batch_size)])


@EXTRACTORS.register("classifier", summary="small CNN trained on the dataset's labelled train split (128-d)")
def classifier(dataset: str = "fashion-mnist", root: str | None = None, resolution: int = 28, channels: int = 1,
               cache_dir: str | None = None, epochs: int = 3, batch_size: int = 128, lr: float = 2e-3,
               seed: int = 0, device: str = "cpu") -> ClassifierExtractor:
    """Load the cached classifier for this dataset, or train and cache it.

    The cache key holds everything that determines the weights: architecture name and
    version, dataset name and fingerprint (sha256 of its images and labels), resolution,
    channels and the training settings. A changed dataset therefore retrains instead of
    silently reusing a network trained on other data. Training runs on the CPU, so its time
    grows with the training split and falls with free cores (Fashion-MNIST's 60,000 images:
    137 s on 2 idle cores, several minutes on a busy machine); ``device`` is where features
    are computed.
    """
    train = load_dataset(dataset, root, "train", resolution, channels)
    if not train.is_image:
        raise ConfigError(f"the 'classifier' extractor is for image datasets; '{dataset}' is 2-D "
                          "points (use 'identity', or the mode metrics)")
    fingerprint = dataset_fingerprint(train)
    settings = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "seed": seed}
    settings_hash = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    key = (f"{CLASSIFIER_ARCH}-v{CLASSIFIER_VERSION}-{dataset}-{resolution}px-{channels}ch-"
           f"{fingerprint[:16]}-{settings_hash}")
    folder = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    weights_path, meta_path = folder / f"{key}.pt", folder / f"{key}.json"

    if weights_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
            if state_dict_sha256(state) != meta.get("weights_sha256"):
                raise ValueError("weights do not match their recorded sha256")
            model = SmallCNN(channels, state["head.weight"].shape[0], state["head.weight"].shape[1])
            model.load_state_dict(state)
            return ClassifierExtractor(model, {**meta, "cache_file": str(weights_path)}, device)
        except Exception as exc:  # noqa: BLE001 - any unusable cache entry is rebuilt
            warnings.warn(f"{weights_path}: unusable cached classifier ({exc}); retraining", stacklevel=2)

    test = None
    try:
        test = load_dataset(dataset, root, "test", resolution, channels)
        if test.samples.shape == train.samples.shape and torch.equal(test.samples, train.samples):
            test = None  # the loader has no separate test split: train accuracy would mislead
    except (OSError, ValueError):
        pass  # no test split: accuracy is reported as None
    progress.note(f"training the feature classifier on {dataset} ({len(train)} images, {epochs} epochs on the CPU; "
                  f"once per dataset: cached in {folder})")
    model, info = train_classifier(train, test, **settings)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    meta = {"arch": CLASSIFIER_ARCH, "version": CLASSIFIER_VERSION, "dataset": dataset,
            "dataset_sha256": fingerprint, "resolution": resolution, "channels": channels,
            "training": settings, **info, "weights_sha256": state_dict_sha256(state),
            "torch": torch.__version__, "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(weights_path, lambda p: torch.save(state, p))
    atomic_write(meta_path, lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    return ClassifierExtractor(model, {**meta, "cache_file": str(weights_path)}, device)


class StackedExtractor(FeatureExtractor):
    """Stacked data: a single-channel classifier applied to each of the 3 channels.

    Features are the three 128-d feature vectors concatenated (a domain FID for stacked
    images); ``predict_triples`` gives the class of each channel, the mode of a sample
    (Stacked-MNIST protocol).
    """

    def __init__(self, base: ClassifierExtractor) -> None:
        resolution = base.info["resolution"]
        super().__init__("stacked-classifier", base.model, 3 * base.feature_dim, {**base.info, "per_channel": True},
                         base.device, input_shape=(3, resolution, resolution))
        self.base = base

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.base.embed(x[:, c:c + 1]) for c in range(3)], 1)

    def predict_triples(self, samples: torch.Tensor) -> torch.Tensor:
        self._check(samples)
        return predict_triples(self.base.predict, samples)


# --- FID Inception -----------------------------------------------------------------------------

class InceptionExtractor(FeatureExtractor):
    """2048-d pool features of the FID InceptionV3.

    Samples go in as pytorch-fid's network takes them: uint8 pixels / 255 (float samples in
    [-1, 1] as (x + 1) / 2); the model then repeats grayscale to RGB, resizes bilinearly to
    299x299 (align_corners=False) and maps [0, 1] to [-1, 1] (``inception.preprocess``).
    """

    def __init__(self, model: FIDInceptionV3, info: dict[str, Any] | None = None,
                 device: str | torch.device = "cpu") -> None:
        # 50 at 299 px is ~2 GB of activations: the batch pytorch-fid uses by default.
        super().__init__("inception", model, 2048, info, device, default_batch_size=50)

    def prepare(self, samples: torch.Tensor) -> torch.Tensor:
        return to_unit_range(samples)


@EXTRACTORS.register("inception", summary="FID InceptionV3 (2048-d), from pytorch-fid's local weights file",
                     paper="Szegedy et al. 2016; Heusel et al. 2017")
def inception(weights: str | None = None, device: str = "cpu") -> InceptionExtractor:
    """The FID Inception with weights read from ``weights`` (a local file only)."""
    hint = (f"the 'inception' extractor needs pytorch-fid's FID Inception weights, the file "
            f"{FID_WEIGHTS_NAME} (TensorFlow's 2015-12-05 Inception graph converted to PyTorch); "
            f"nothing is downloaded: copy that file here and pass --weights FILE (train.eval_weights in a config)")
    if weights is None:
        raise ConfigError(hint)
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ConfigError(f"{path}: no such file; {hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same explanation
        raise ConfigError(f"{path}: not a readable PyTorch state dict ({type(exc).__name__}); {hint}") from exc
    model = FIDInceptionV3()
    if isinstance(state, dict) and state.get("format") == "steadygan-reference-stats":
        raise ConfigError(f"{path} is a statistics file written by --save-stats, not network weights: give it as "
                          f"--ref {path} (it names its own extractor); {hint}")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"{path} is not a state dict of tensors ({type(state).__name__}); {hint}")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        ours = model.state_dict()
        fits = sum(1 for k, v in state.items() if k in ours and tuple(v.shape) == tuple(ours[k].shape))
        raise ConfigError(f"{path} does not fit the FID InceptionV3: {fits} of its {len(state)} tensors match the "
                          f"network's {len(ours)} by name and shape; {hint}") from exc
    return InceptionExtractor(model, {"weights_file": str(path), "file_sha256": file_sha256(path)}, device)


# --- an extractor for given data -----------------------------------------------------------------

def build_extractor_for(name: str, dataset: str | None = None, root: str | None = None, resolution: int = 28,
                        channels: int = 1, **options: Any) -> FeatureExtractor:
    """The extractor ``name`` for images of ``dataset`` at this resolution and channel count.

    Only the classifier depends on the data: it is trained on ``dataset``'s labelled train
    split at that size (for stacked data, one single-channel classifier applied per channel,
    which also counts the digit triples). Other extractors ignore the data arguments.
    """
    if name != "classifier":
        return build_extractor(name, **options)
    if dataset is None:
        raise ConfigError("the 'classifier' extractor needs a labelled dataset to be trained on")
    if dataset_protocol(dataset) == "stacked":
        base = "fashion-mnist" if root is None else "idx"
        return StackedExtractor(build_extractor("classifier", dataset=base, root=root, resolution=resolution,
                                                channels=1, **options))
    return build_extractor("classifier", dataset=dataset, root=root, resolution=resolution, channels=channels,
                           **options)
