"""Real 64x64x3 photographs for the GC-GAN document's own setting: the colour photographs that
ship inside scikit-image, written as PNGs, and crop sets prepared from them.

    pip install -e '.[photos]'                   # scikit-image: only this script needs it
    python benchmarks/photos.py                  # -> prepared/photos/{sources,large,limited}

Writes (each a `steadygan prepare --crops` folder with its own test/ split):

- ``sources/``: the seven photographs (astronaut, coffee, chelsea, rocket, hubble_deep_field,
  immunohistochemistry, retina; 300 to 1411 px), as PNGs;
- ``large/``: --large crops (default 20,000) of the training regions (the first three quarters
  of each photograph along its longer side), with random flips: many overlapping crops;
- ``limited/``: --limited crops (default 300) of the same regions: the limited-data setting;
- ``*/test/``: --test crops (default 2,000) of the test regions (the last quarter), pixels
  neither set trains on: the evaluation's reference and the feature classifier's held-out set.

Each crop's label is its photograph (7 classes): the proxy task the cached feature classifier
learns, so FID, precision/recall and class coverage have features to work in. Train with
``--set data.name=prepared --data-dir prepared/photos/large --set data.resolution=64
--set data.channels=3``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from steadygan.data.crops import CropSpec  # noqa: E402
from steadygan.data.prepared import describe, prepare_source  # noqa: E402

PHOTOGRAPHS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")


def write_sources(folder: Path) -> list[Path]:
    """The photographs as RGB PNGs (written once; an existing file is kept)."""
    try:
        import skimage.data
    except ImportError:
        sys.exit("benchmarks/photos.py needs scikit-image: pip install -e '.[photos]'")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in PHOTOGRAPHS:
        path = folder / f"{name}.png"
        if not path.exists():
            pixels = np.asarray(getattr(skimage.data, name)())
            if pixels.ndim == 2:
                pixels = np.stack([pixels] * 3, axis=-1)
            Image.fromarray(pixels[..., :3].astype(np.uint8)).save(path)
        paths.append(path)
    return paths


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="prepared/photos", help="folder to write (default prepared/photos)")
    p.add_argument("--size", type=int, default=64, help="crop side (default 64)")
    p.add_argument("--large", type=int, default=20000, help="crops of the large set (default 20,000)")
    p.add_argument("--limited", type=int, default=300, help="crops of the limited set (default 300)")
    p.add_argument("--test", type=int, default=2000, help="test-region crops of each set (default 2,000)")
    p.add_argument("--force", action="store_true", help="replace the crop sets already there")
    args = p.parse_args()
    out = Path(args.out)
    sources = out / "sources"
    paths = write_sources(sources)
    megapixels = sum(np.prod(Image.open(path).size) for path in paths) / 1e6
    print(f"{len(paths)} photographs in {sources} ({megapixels:.1f} megapixels)")
    # Seeds: the large and the limited set draw different crops; both test splits are the same crops.
    for name, count, seed in (("large", args.large, 0), ("limited", args.limited, 1)):
        for folder, spec in ((out / name, CropSpec(count, args.size, seed, "train", flip=True)),
                             (out / name / "test", CropSpec(args.test, args.size, 100, "test"))):
            if (folder / "manifest.json").exists() and not args.force:
                print(f"kept {folder} (--force replaces it)")
                continue
            print(describe(prepare_source(sources, folder, force=args.force, crops=spec), folder))


if __name__ == "__main__":
    main()
