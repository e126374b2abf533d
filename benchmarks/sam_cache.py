"""What the on-disk cache of the frozen SAM encoder's embeddings (`model.sam_embedding_cache`) saves on `mini`.

    python benchmarks/sam_cache.py [--images 8] [--batch 2] [--threads 2]

Builds the real `mini` (LiteMedSAM's TinyViT encoder, frozen) and measures `sam_image_embeddings` on batches of
`--batch` distinct 256-px images: (a) encoding them, as every training step and eval run pays without the cache,
(b) reading them back from the disk cache in a fresh process state (the in-memory LRU cleared), as a later step,
stage or eval mode does. Prints seconds per image for both, the ratio, and one JSON line. Exactness is tested in
tests/pixsearch_core/test_sam_embedding_cache.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8, help="distinct images measured (default 8)")
    ap.add_argument("--batch", type=int, default=2, help="images per call, as a rank's micro-batch (default 2)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    args = ap.parse_args(argv)
    import numpy as np
    import torch

    from pixsearch_core.registry import get

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(args.images)]
    with tempfile.TemporaryDirectory() as tmp:
        model = get("model", "mini")(overrides=[f"sam_embedding_cache={tmp}"]).eval()
        batches = [model.prepare_images(images[i : i + args.batch]) for i in range(0, len(images), args.batch)]
        times = {}
        for phase in ("encode", "disk"):  # the first pass fills the cache, the second reads it
            model.clear_image_cache()  # the in-memory LRU: a fresh process, a later stage or eval mode
            t0 = time.perf_counter()
            with torch.no_grad():
                for b in batches:
                    model.sam_image_embeddings(b)
            times[phase] = (time.perf_counter() - t0) / len(images)
        disk = model._disk_cache()
        assert disk.hits >= len(images), f"expected every image from disk on the second pass, got {disk.hits} hits"
        size_mb = sum(f.stat().st_size for f in Path(tmp).rglob("*.safetensors")) / len(images) / 2**20
    result = {
        "images": args.images,
        "batch": args.batch,
        "threads": args.threads,
        "encode_s_per_image": round(times["encode"], 4),
        "disk_s_per_image": round(times["disk"], 4),
        "ratio_encode_over_disk": round(times["encode"] / times["disk"], 1),
        "mb_per_image": round(size_mb, 2),
    }
    print(f"| LiteMedSAM embedding | s per image |\n|---|---|\n| encode (no cache) | {result['encode_s_per_image']} |")
    print(f"| read from the disk cache | {result['disk_s_per_image']} |")
    print(f"ratio encode / disk: x{result['ratio_encode_over_disk']}; {result['mb_per_image']} MB per image on disk")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
