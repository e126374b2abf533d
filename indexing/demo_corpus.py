"""The demo corpus, built only from data that ships in installed PyPI packages.

- text: the 106 English Wikipedia articles of gensim's test dump (a real MediaWiki `.xml.bz2` export);
- images: the real photographs of scikit-image, scikit-learn and matplotlib, each with a short document about
  what it shows; the documents go to `photos.jsonl`, the images to a webdataset shard keyed by document id.

`demo_sources(cache_dir)` writes the photo files once (byte-identical every time: original image bytes, tar
members with fixed metadata) and returns the three sources to read.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from indexing.config import SourceConfig
from indexing.embedders import package_dir

WIKI_DUMP = "test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"

#: (doc id, package, path inside the package, title, text)
PHOTOS = [
    (
        "photo-astronaut",
        "skimage",
        "data/astronaut.png",
        "Astronaut Eileen Collins",
        "Official NASA portrait of astronaut Eileen Collins, the first woman to pilot and to command a Space Shuttle. "
        "She wears an orange launch and entry suit and holds her helmet, with the American flag behind her.",
    ),
    (
        "photo-cameraman",
        "skimage",
        "data/camera.png",
        "The cameraman",
        "A black and white photograph of a man in a dark coat standing on a lawn and looking through a film camera "
        "mounted on a tripod, with buildings in the distance.",
    ),
    (
        "photo-chelsea",
        "skimage",
        "data/chelsea.png",
        "Chelsea the cat",
        "A close-up photograph of Chelsea, an orange tabby cat with green-yellow eyes and white whiskers, "
        "looking slightly to the side.",
    ),
    (
        "photo-coffee",
        "skimage",
        "data/coffee.png",
        "A cup of coffee",
        "A white porcelain cup of coffee with a saucer and a spoon on a red wooden table, seen from above.",
    ),
    (
        "photo-coins",
        "skimage",
        "data/coins.png",
        "Greek coins",
        "Twenty-four old Greek coins from Pompeii arranged in rows on a dark background, photographed in grey scale.",
    ),
    (
        "photo-hubble",
        "skimage",
        "data/hubble_deep_field.jpg",
        "Hubble Deep Field",
        "The Hubble eXtreme Deep Field: thousands of distant galaxies of many colours and shapes in a tiny patch of "
        "the night sky, photographed by the Hubble Space Telescope.",
    ),
    (
        "photo-moon",
        "skimage",
        "data/moon.png",
        "The surface of the Moon",
        "A grey scale photograph of the cratered surface of the Moon with maria and impact craters.",
    ),
    (
        "photo-rocket",
        "skimage",
        "data/rocket.jpg",
        "A rocket launch",
        "A SpaceX Falcon 9 rocket lifting off from the launch pad, trailing bright exhaust flames and smoke.",
    ),
    (
        "photo-motorcycle",
        "skimage",
        "data/motorcycle_left.png",
        "A motorcycle in a garage",
        "A red and silver motorcycle parked indoors among tools and boxes; the left image of a stereo pair.",
    ),
    (
        "photo-retina",
        "skimage",
        "data/retina.jpg",
        "Human retina",
        "A fundus photograph of a human retina: the orange-red back of the eye with the optic disc and branching "
        "blood vessels.",
    ),
    (
        "photo-brick",
        "skimage",
        "data/brick.png",
        "A brick wall",
        "A grey scale close-up of a brick wall with mortar joints, a texture photograph.",
    ),
    (
        "photo-grass",
        "skimage",
        "data/grass.png",
        "Grass",
        "A grey scale texture photograph of blades of grass seen from above.",
    ),
    (
        "photo-gravel",
        "skimage",
        "data/gravel.png",
        "Gravel",
        "A grey scale texture photograph of small stones and gravel on the ground.",
    ),
    (
        "photo-page",
        "skimage",
        "data/page.png",
        "A scanned book page",
        "A photograph of a printed book page with lines of text and uneven lighting across the paper.",
    ),
    (
        "photo-china",
        "sklearn",
        "datasets/images/china.jpg",
        "A Chinese temple",
        "A traditional Chinese temple building with curved roofs under a blue sky, surrounded by trees.",
    ),
    (
        "photo-flower",
        "sklearn",
        "datasets/images/flower.jpg",
        "A flower",
        "A close-up photograph of a pink dahlia flower with a yellow centre and a bee, against dark green leaves.",
    ),
    (
        "photo-grace-hopper",
        "matplotlib",
        "mpl-data/sample_data/grace_hopper.jpg",
        "Grace Hopper",
        "Portrait of Rear Admiral Grace Hopper, computer scientist and United States Navy officer, in her navy "
        "uniform. She led the development of COBOL.",
    ),
]


def wiki_dump_path() -> Path:
    root = package_dir("gensim")
    if root is None or not (root / WIKI_DUMP).is_file():
        raise FileNotFoundError(f"demo corpus needs gensim's test dump gensim/{WIKI_DUMP} (pip install gensim)")
    return root / WIKI_DUMP


def photo_files() -> list[tuple[str, Path, str, str]]:
    """(doc id, file, title, text) of every demo photo whose package is installed."""
    out = []
    for doc_id, pkg, rel, title, text in PHOTOS:
        root = package_dir(pkg)
        if root is not None and (root / rel).is_file():
            out.append((doc_id, root / rel, title, text))
    if not out:
        raise FileNotFoundError("demo corpus: no photographs found (install scikit-image, scikit-learn, matplotlib)")
    return out


def _tar_bytes(photos: list[tuple[str, Path, str, str]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for doc_id, path, _, _ in photos:
            data = path.read_bytes()
            info = tarfile.TarInfo(f"{doc_id}{path.suffix.lower()}")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def demo_fingerprint() -> str:
    h = hashlib.sha256(wiki_dump_path().read_bytes())
    for doc_id, path, title, text in photo_files():
        h.update(f"{doc_id}\0{title}\0{text}\0".encode() + path.read_bytes())
    return h.hexdigest()


def write_demo_corpus(target: str | Path) -> Path:
    """Write photos.jsonl and images/photos-000000.tar under `target` (idempotent); returns it."""
    target = Path(target).expanduser()
    (target / "images").mkdir(parents=True, exist_ok=True)
    photos = photo_files()
    docs = "".join(json.dumps({"id": d, "title": t, "text": x, "url": f"demo://{d}"}) + "\n" for d, _, t, x in photos)
    for path, data in (
        (target / "photos.jsonl", docs.encode()),
        (target / "images" / "photos-000000.tar", _tar_bytes(photos)),
    ):
        if not path.is_file() or path.read_bytes() != data:
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    return target


def demo_sources(cache_dir: str) -> list[SourceConfig]:
    root = write_demo_corpus(Path(cache_dir).expanduser() / "demo-corpus")
    return [
        SourceConfig(kind="mediawiki", path=str(wiki_dump_path())),
        SourceConfig(kind="jsonl", path=str(root / "photos.jsonl")),
        SourceConfig(kind="webdataset", path=str(root / "images" / "photos-000000.tar")),
    ]
