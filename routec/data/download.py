"""Opt-in fetching of the canonical MNIST and CIFAR-10 files (``--download``).

Only ever called when the user asks; every file is checked against its published
MD5 before it is put in place, and archives are unpacked with tarfile's ``data``
filter so that no member can escape the data root.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

from routec.data.log import note
from routec.errors import DataError

MNIST_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to ``dest`` through a temporary file, refusing a wrong checksum."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    note(f"downloading {url}")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, tmp.open("wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        found = _md5(tmp)
        if found != md5:
            raise DataError(f"{url}: expected MD5 {md5}, found {found}")
        os.replace(tmp, dest)
    except OSError as err:
        raise DataError(f"could not download {url} ({err})") from err
    finally:
        tmp.unlink(missing_ok=True)


def fetch_mnist(root: Path) -> None:
    raw = root / "MNIST" / "raw"
    for name, md5 in MNIST_MD5.items():
        dest = raw / name
        if dest.is_file() and _md5(dest) == md5:
            continue
        errors: list[str] = []
        for mirror in MNIST_MIRRORS:
            try:
                download_file(mirror + name, dest, md5)
                break
            except DataError as err:
                errors.append(err.message)
        else:
            raise DataError(f"could not download MNIST {name}: {'; '.join(errors)}")


def fetch_cifar10(root: Path) -> None:
    archive = root / "cifar-10-python.tar.gz"
    if not (archive.is_file() and _md5(archive) == CIFAR10_MD5):
        download_file(CIFAR10_URL, archive, CIFAR10_MD5)
    note(f"unpacking {archive}")
    with tarfile.open(archive, "r:gz") as tar:
        tar.extractall(root, filter="data")


def fetch(source: str, root: Path) -> None:
    """Download ``source`` ("mnist" or "cifar10") into ``root``."""
    if source == "mnist":
        fetch_mnist(root)
    elif source == "cifar10":
        fetch_cifar10(root)
    else:
        raise DataError(f"no download known for '{source}'")
