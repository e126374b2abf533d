"""Encoder throughput per CPU core (or per GPU with --device cuda) and the 6M-document extrapolation.

    python benchmarks/encoder_throughput.py [--threads 1] [--passages 128] [--images 16] [--device cpu|cuda]

Measures the embedded encoders (all-MiniLM-L6-v2 on 100-word Wikipedia passages of the demo dump, DINOv2 ViT-S/14
ONNX on the demo photos, decode + preprocess included) with `--threads` torch / onnxruntime threads, after one
warm-up batch. The paper's encoders (all-mpnet-base-v2, a DINO-family ViT-B) are not installed here, so their
rates are ESTIMATED from the measured ones by forward FLOPs (MPNet-base ~8x MiniLM-L6 per token: 12 layers of
width 768 vs 6 of 384; ViT-B/16 17.6 GFLOPs vs ViT-S/14 4.6 at 224 px, ~3.8x). 6M documents = ~39M passages
(~650 words per article) and ~6M images. Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PASSAGES_6M, IMAGES_6M = 39e6, 6e6
FLOP_RATIO = {"mpnet": 8.0, "vit_b": 3.8}


def text_rate(n: int, device: str) -> float:
    from indexing.config import PassageConfig, TextEncoderConfig
    from indexing.demo_corpus import wiki_dump_path
    from indexing.embedders import text_encoder
    from indexing.passages import embed_text, split_passages
    from indexing.readers import read_mediawiki
    from pixsearch_core.storage import ObjectStore

    pcfg, texts = PassageConfig(words=100), []
    for art in read_mediawiki(str(wiki_dump_path()), ObjectStore(), ""):
        texts += [embed_text(art["title"], p, pcfg) for p in split_passages(art["text"], pcfg)]
        if len(texts) >= n + 64:
            break
    enc = text_encoder(TextEncoderConfig(device=device, batch_size=64), "~/.cache/pixsearch")
    enc.encode(texts[:64])  # warm-up
    t0 = time.perf_counter()
    enc.encode(texts[64 : 64 + n])
    return n / (time.perf_counter() - t0)


def image_rate(n: int, device: str) -> float:
    from PIL import Image

    from indexing.config import ImageEncoderConfig
    from indexing.demo_corpus import photo_files
    from indexing.embedders import image_encoder

    files = [p for _, p, _, _ in photo_files()]
    enc = image_encoder(ImageEncoderConfig(device=device, batch_size=8), "~/.cache/pixsearch")
    enc.encode([Image.open(files[0]).convert("RGB")])
    t0 = time.perf_counter()
    enc.encode([Image.open(files[i % len(files)]).convert("RGB") for i in range(n)])
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (1 = per core)")
    ap.add_argument("--passages", type=int, default=128)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ["PIXSEARCH_ORT_THREADS"] = str(args.threads)
    unit = "GPU" if args.device.startswith("cuda") else f"{args.threads} core(s)"
    t, i = text_rate(args.passages, args.device), image_rate(args.images, args.device)
    rows = {
        "minilm_passages_per_s": (t, "measured", PASSAGES_6M),
        "mpnet_passages_per_s": (t / FLOP_RATIO["mpnet"], "estimated", PASSAGES_6M),
        "dinov2_s_images_per_s": (i, "measured", IMAGES_6M),
        "vit_b_images_per_s": (i / FLOP_RATIO["vit_b"], "estimated", IMAGES_6M),
    }
    out = {"unit": unit, "device": args.device}
    print(f"{'encoder':<24} {'items/s per ' + unit:>22}  {'':<9} {'6M docs: ' + unit + '-hours':>26}")
    for name, (rate, how, total) in rows.items():
        hours = total / rate / 3600
        out[name] = {"rate": round(rate, 2), "how": how, "hours_6m": round(hours)}
        print(f"{name:<24} {rate:>22.2f}  {how:<9} {hours:>26,.0f}")
    paper = out["mpnet_passages_per_s"]["hours_6m"] + out["vit_b_images_per_s"]["hours_6m"]
    print(f"paper's encoders (MPNet text + ViT-B image), 6M documents: ~{paper:,} {unit}-hours (estimated)")
    print(json.dumps({**out, "paper_encoders_hours_6m": paper}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
