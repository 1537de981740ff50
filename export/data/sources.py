"""Where every shared catalog comes from, and checks that a local copy matches.

The project ships no data (none of these has a confirmed licence for
redistribution). It records, for each dataset folder, the public repository,
commit and path it was taken from and the sha256 and size of each local file,
so a user without the copy knows where to fetch it and can check it with
:func:`verify`. :func:`fingerprint` hashes a list of examples for the model
bundle's metadata.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from export.data.catalog import Example
from export.data.datasets import DATA_DIR_HINT, DATASETS
from export.errors import ExportError

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One local file: its path under the dataset folder, origin path, sha256 and size."""

    local: str
    origin: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class Source:
    """The public origin of one dataset folder."""

    folder: str
    repository: str
    commit: str
    preparation: str
    licence: str
    files: tuple[SourceFile, ...]

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repository}/tree/{self.commit}"


def _ia(domain: str, part: str, sha256: str, size: int) -> SourceFile:
    return SourceFile(
        f"{domain}/{part}.tsv", f"data/training_data/texts/{domain}/{part}.tsv", sha256, size
    )


SOURCES: dict[str, Source] = {
    s.folder: s
    for s in (
        Source(
            folder="bigbasket",
            repository="nishijamnani/BigBasket_Dashboard",
            commit="dd12d562c3f7949aed7186a765fc4138faeeb3ad",
            preparation="copied unchanged (git blob 09a97d364f85e69e2e86139e885597f41f263d33)",
            licence="none stated; upstream Kaggle licence not verified: research only",
            files=(
                SourceFile(
                    "BigBasket Products.csv",
                    "BigBasket Products.csv",
                    "b6495249fa7561f3be3d7eb08a568a85a0f1a4c7dce0fd99ccc6636b7935a5f4",
                    3327368,
                ),
            ),
        ),
        Source(
            folder="amazon_in_2023",
            repository="gracious7/merge-and-trim-csv",
            commit="3b2bbaf83693f35b256eafe1e4c5b44a9459110e",
            preparation="copied unchanged (git blob e6ce1ff51619193950bace467f58f5b9a7a18eb8)",
            licence="none stated; scraped Amazon data, Kaggle licence not verified: research only",
            files=(
                SourceFile(
                    "Amazon-Products.csv",
                    "Amazon-Products.csv",
                    "e78e3fe18e9d678c517f7c55ea7d5cc578f057e82c90d28cb5a7209054aa66e3",
                    3840533,
                ),
            ),
        ),
        Source(
            folder="implicitave_amazon",
            repository="HenryPengZou/ImplicitAVE",
            commit="24470e1e19f66be4ea61b6b470e43de47d183a56",
            preparation="copied unchanged (train_and_val.tsv omitted: it is train + val)",
            licence="none stated; Amazon Review Data (2018) via MAVE: research only",
            files=(
                _ia(
                    "Clothing",
                    "train",
                    "b5def9e0cee880a1aeed3bb7f9648105d9a237feec268e8256de34951e91c674",
                    1818921,
                ),
                _ia(
                    "Clothing",
                    "val",
                    "386a84433e52ecc1c3f10493f76b500f724b4fc26a63633241fe7a2da87aeefc",
                    449336,
                ),
                _ia(
                    "Clothing",
                    "test",
                    "833d54809be5727229b923c7eb0e0162dea848776e5386236aa910f05fc35a59",
                    26606,
                ),
                _ia(
                    "Food",
                    "train",
                    "c7dc5a8ee0ff5d49fb410e169746e6d4ce98ad198d64c0946cb308bf4b91f1d5",
                    363729,
                ),
                _ia(
                    "Food",
                    "val",
                    "085f9032fb37810f14e010882cd12d7b57567a7b7a7f325f6dc8270ab878d76a",
                    91313,
                ),
                _ia(
                    "Food",
                    "test",
                    "2484313b06c315b02abcaeda51345f78959825459e3934b667c672c5a05535cd",
                    47847,
                ),
                _ia(
                    "Footwear",
                    "train",
                    "30037310e9f85b307fbe18799ade95d1a73ff4c53adb92d7ae5d5d81206978fb",
                    1990066,
                ),
                _ia(
                    "Footwear",
                    "val",
                    "602b83429a6c2e0b66afd2d07587d3a2f2a0f34b69a57c2ec440ea3e9aabb67e",
                    506496,
                ),
                _ia(
                    "Footwear",
                    "test",
                    "487fb6c7b34a258f7c9b6a894b8868c93b7580f2693cd7b9b3ef5b982254dbc8",
                    37194,
                ),
                _ia(
                    "Home",
                    "train",
                    "4c3009f4e6e548806e0b16d5b623759154180826608a946e934b3ee784f4ad50",
                    1205832,
                ),
                _ia(
                    "Home",
                    "val",
                    "32cad9699d635966a6b694c40733b5e230a29be7011ddb82a545657b3191e6e4",
                    298023,
                ),
                _ia(
                    "Home",
                    "test",
                    "7d34f6f76bbf2352fa835b17d55c04a2afd5a2ba7fb51ab4bde9c1225def0ce6",
                    61332,
                ),
                _ia(
                    "Jewlery_and_General_Apparel",
                    "train",
                    "27ed615618a69aea6bd712858685d169e4c42ae28a75ebd6b8e88005913fa208",
                    1267739,
                ),
                _ia(
                    "Jewlery_and_General_Apparel",
                    "val",
                    "eaa28fbf39d35b50b9ff51412fd9d8e31f7f10c4a3ae044aa759a81587e4e8e1",
                    314110,
                ),
                _ia(
                    "Jewlery_and_General_Apparel",
                    "test",
                    "6633723bf008ce4aca84cce12b18f9a3ca34a53cda63364f060480c9affca4e5",
                    26830,
                ),
            ),
        ),
        Source(
            folder="myntra_styles",
            repository="knowrohit/recommendation-using-ResNet50",
            commit="f1c38a6920efaee68250bb9218d37a84cb48e821",
            preparation=(
                "unzipped member styles.csv of styles.csv.zip (zip sha256 "
                "2d5c74f249c44da1690bbdd2221e526e57d170eea8260d03605f7446813e92c1)"
            ),
            licence="repo MIT; the data's own licence is Kaggle paramaggarwal's, not verified",
            files=(
                SourceFile(
                    "styles.csv",
                    "styles.csv.zip!styles.csv",
                    "cd86bd2d71b4065ed91786a52aa6ccc0eed343949791c663be9af35f105a128c",
                    4332000,
                ),
            ),
        ),
        Source(
            folder="cn_ecommerce_products",
            repository="FrankRouter/product-classification",
            commit="e752ff62067b9dc0f9e8a8a390e42cc21a2f3bfa",
            preparation=(
                "products.csv: dataset/*.csv concatenated in sorted file-name order, then "
                "101,162 of its 119,153 lines kept (about 15% held out for a blind "
                "evaluation by a hash of the title); allcategories.csv unchanged"
            ),
            licence="none stated: research only",
            files=(
                SourceFile(
                    "products.csv",
                    "dataset/*.csv (concatenated, subset)",
                    "78125179987188ee8d071079140272c90fb08e705d6fb6948c8e0fbb8948fa72",
                    24959427,
                ),
                SourceFile(
                    "allcategories.csv",
                    "allcategories.csv",
                    "46b7f8e3172f57f47f91f4e5f9b0ba0aa1986085e958f8954c2a01a7c478109d",
                    74439,
                ),
            ),
        ),
        Source(
            folder="online_shopping_10_cats",
            repository="SophonPlus/ChineseNlpCorpus",
            commit="a0b781d72158bde242c0626c9e354d2b328865ff",
            preparation=(
                "unzipped datasets/online_shopping_10_cats/online_shopping_10_cats.zip "
                "(zip sha256 6816ded66fde9d0927ecbd370b5e12d0174d1abac35192ec014ac2a0a8d25858)"
            ),
            licence="none stated: research only",
            files=(
                SourceFile(
                    "online_shopping_10_cats.csv",
                    "datasets/online_shopping_10_cats/online_shopping_10_cats.zip"
                    "!online_shopping_10_cats.csv",
                    "f6c5b724122d8547b700ac4524898eb7e28abbee63f798e95a8faa408829afdb",
                    11299695,
                ),
            ),
        ),
    )
}


def source_for(dataset: str) -> Source:
    """The origin of a registry dataset (by name, e.g. ``online_shopping_10_cats_sentiment``)."""
    info = DATASETS.get(dataset)
    if info is None:
        raise ExportError(f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))}")
    return SOURCES[info.folder]


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(data_dir: Path, datasets: Iterable[str] | None = None) -> list[str]:
    """Problems with the local copy (missing file, size or checksum mismatch); [] if fine.

    ``datasets`` limits the check to some registry names (default: every folder).
    Each problem says where the file comes from, so it can be fetched again.
    """
    root = Path(data_dir)
    if not root.is_dir():
        return [f"{root}: data folder not found: {DATA_DIR_HINT}"]
    folders = (
        list(SOURCES) if datasets is None else sorted({source_for(d).folder for d in datasets})
    )
    problems: list[str] = []
    for folder in folders:
        source = SOURCES[folder]
        for item in source.files:
            path = root / folder / item.local
            where = f"{folder}/{item.local}"
            origin = f"from {source.repository}@{source.commit[:12]}:{item.origin}"
            if not path.is_file():
                problems.append(f"{where}: missing ({origin})")
                continue
            size = path.stat().st_size
            if size != item.size:
                problems.append(f"{where}: {size} bytes, expected {item.size} ({origin})")
            elif sha256_file(path) != item.sha256:
                problems.append(f"{where}: sha256 mismatch, expected {item.sha256} ({origin})")
    return problems


def fingerprint(examples: Iterable[Example]) -> str:
    """Hex sha256 over the examples' ids, titles and paths, in order."""
    digest = hashlib.sha256()
    for example in examples:
        record = [example.source, example.product_id, example.title, list(example.path)]
        digest.update(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()
