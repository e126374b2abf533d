"""A tiny published index (hash encoder, text + image, 3 shards each) for the search-service tests."""

from __future__ import annotations

import numpy as np
from PIL import Image

from indexing.synthetic import HashEncoder, write_index
from pixsearch_core.storage import ObjectStore

TOPICS = [
    "volcano lava magma eruption",
    "violin strings bow music",
    "tea leaves beverage drink",
    "cat whiskers tabby pet",
    "coffee cup saucer espresso",
    "river water bridge boat",
    "mountain snow peak climbing",
    "piano keys chords music",
    "owl night bird prey",
    "desert sand dunes camel",
]


def picture(i: int, size: int = 32) -> Image.Image:
    """A distinct picture per i: a coloured gradient with a block whose place depends on i."""
    rng = np.random.default_rng(i)
    arr = (rng.random((size, size, 3)) * 60).astype(np.uint8)
    arr += np.array([(i * 37) % 200, (i * 91) % 200, (i * 53) % 200], np.uint8)
    y, x = (i * 7) % (size - 10), (i * 13) % (size - 10)
    arr[y : y + 10, x : x + 10] = 255 - arr[y : y + 10, x : x + 10]
    return Image.fromarray(arr)


def tiny_index(root, shards: int = 3, n_text: int = 30, n_image: int = 12) -> str:
    enc = HashEncoder(48)
    texts = [f"{TOPICS[i % len(TOPICS)]} item{i} passage{i}" for i in range(n_text)]
    text_docs = [
        {"doc_id": f"doc-{i}", "title": f"Doc {i}", "text": t, "url": f"https://x/{i}"} for i, t in enumerate(texts)
    ]
    pics = [picture(i) for i in range(n_image)]
    image_docs = [
        {
            "doc_id": f"img-doc-{i}",
            "title": f"Image {i}",
            "text": f"caption {i}",
            "url": f"https://i/{i}",
            "key": f"img-{i}.png",
        }
        for i in range(n_image)
    ]
    return write_index(
        ObjectStore(),
        str(root / "out"),
        "tiny",
        {"text": (enc.encode(texts), text_docs), "image": (enc.encode(pics), image_docs)},
        shards=shards,
    )
