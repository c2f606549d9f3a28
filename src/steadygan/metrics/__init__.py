"""Sample-quality metrics: FID, KID, precision/recall, density/coverage, mode coverage.

Pure functions of feature sets (``fid``, ``kid``, ``prdc``, ``mode_metrics``), feature
extractors by name (``EXTRACTORS``: classifier, inception, pixels, identity), and the
evaluation of any :class:`Generative` model against a dataset with a real-vs-real floor
(``Evaluator``). Scoring any image set against any reference (``steadygan eval SAMPLES --ref
REF``): ``sources`` (arguments -> images, dataset or statistics), ``reference`` (real
features, floor, scoring), ``stats`` (statistics files). Rebuilding a trained run to score
it is ``steadygan.training.evaluation``'s.
"""

from ..data.stacked import make_stacked_mnist
from .evaluate import IMAGE_METRICS, METRICS_FILE, Evaluator, Generative, format_table, json_safe, score_features
from .features import (
                       EXTRACTORS,
                       ClassifierExtractor,
                       FeatureExtractor,
                       InceptionExtractor,
                       SmallCNN,
                       build_extractor,
                       classifier,
                       dataset_fingerprint,
                       default_cache_dir,
                       inception,
                       state_dict_sha256,
                       train_classifier,
)
from .fid import fid, frechet_distance, gaussian_stats
from .inception import FID_WEIGHTS_NAME, FIDInceptionV3
from .kid import kid, mmd2_unbiased
from .modes import mode_metrics, predict_triples, stacked_mode_metrics
from .prdc import density_coverage, prdc, precision_recall
from .stats import ReferenceStats, load_stats, save_stats

__all__ = [
    "EXTRACTORS", "FID_WEIGHTS_NAME", "IMAGE_METRICS", "METRICS_FILE", "ClassifierExtractor", "Evaluator",
    "Generative", "ReferenceStats", "load_stats", "save_stats",
    "FIDInceptionV3", "FeatureExtractor", "InceptionExtractor", "SmallCNN", "build_extractor", "classifier",
    "dataset_fingerprint", "default_cache_dir", "density_coverage",
    "fid", "format_table", "frechet_distance", "gaussian_stats", "inception", "json_safe", "kid",
    "make_stacked_mnist", "mmd2_unbiased", "mode_metrics", "precision_recall", "prdc", "predict_triples",
    "score_features", "stacked_mode_metrics", "state_dict_sha256", "train_classifier",
]
