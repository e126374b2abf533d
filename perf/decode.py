"""Search-interleaved decoding: KV cache kept across hops vs the whole context re-encoded after each hop
(Search-R1 / MMSearch-R1 / FlashRAG style), and batch B vs batch 1 — all measured in the same run.

Every configuration decodes the SAME trajectories (SearchSchedule forces `--searches` text searches per sample;
the model picks every other token greedily), and the script checks that the tokens are identical.

    python perf/decode.py --size tiny --batch 32 --searches 3
    python perf/decode.py --size mini --batch 32 --samples 32

Model: the PixSearch model of that size if `pixsearch_core.modeling.pixsearch` is importable (`--model auto`);
otherwise a RANDOM Llama stand-in (tiny: 2 layers x 64; mini: SmolLM2-135M's architecture), said in the output.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pixsearch_core.decoding import DecodeOptions, DecodeRequest, SearchInterleavedDecoder  # noqa: E402
from pixsearch_core.decoding.forcing import SearchSchedule  # noqa: E402
from pixsearch_core.modeling.templates import TEMPLATES, generation_prompt  # noqa: E402
from pixsearch_core.retrieval.types import Evidence  # noqa: E402

WORDS = [f"w{i}" for i in range(2000)]
STANDINS = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=4096,
    ),
    "mini": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
    ),
}  # SmolLM2-135M's shape


class SyntheticSearcher:
    """k passages of `words` words each; deterministic per query."""

    def __init__(self, words: int):
        self.words = words

    def search_many(self, queries, k):
        return [
            [
                Evidence(
                    f"d{i}",
                    f"title {i}",
                    " ".join(WORDS[(7 * i + j) % len(WORDS)] for j in range(self.words)),
                    1.0,
                    "text",
                )
                for i in range(k)
            ]
            for _ in queries
        ]

    def search(self, query, k):
        return self.search_many([query], k)[0]


class Counting:
    """Wraps a DecoderModel; counts the positions the LM processes (re-encoded ones included)."""

    def __init__(self, inner):
        self.inner, self.positions = inner, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def prefill(self, requests, continuations):
        out = self.inner.prefill(requests, continuations)
        self.positions += int(out.attention_mask.sum())
        return out

    def extend(self, cache, input_ids, attention_mask, position_ids):
        self.positions += int(attention_mask[:, -input_ids.shape[1] :].sum())
        return self.inner.extend(cache, input_ids, attention_mask, position_ids)


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    from pixsearch_core.modeling.tokens import add_special_tokens

    vocab = {t: i for i, t in enumerate(["<pad>", "<s>", "</s>", "<unk>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    add_special_tokens(fast)
    return fast


def build_model(size: str, which: str):
    if which in ("auto", "pixsearch"):
        try:
            import pixsearch_core.modeling.pixsearch  # noqa: F401
            from pixsearch_core.decoding.pixsearch_adapter import PixSearchAdapter
            from pixsearch_core.registry import get

            return PixSearchAdapter(get("model", size)().float().eval()), f"PixSearchModel {size}"
        except ImportError as e:
            if which == "pixsearch":
                raise
            print(f"# PixSearchModel not available on this branch ({e}); using a random Llama stand-in")
    from transformers import LlamaConfig, LlamaForCausalLM

    from pixsearch_core.decoding.hf import HFCausalLMAdapter

    torch.manual_seed(0)
    cfg = LlamaConfig(max_position_embeddings=4096, attn_implementation="sdpa", **STANDINS[size])
    model = LlamaForCausalLM(cfg).float().eval()
    n = sum(p.numel() for p in model.parameters()) / 1e6
    return HFCausalLMAdapter(model, word_tokenizer()), f"random Llama stand-in for {size} ({n:.0f}M params)"


def run(adapter, reqs, args, kv_cache: bool, batch: int):
    schedule = SearchSchedule(
        adapter.ids, every=args.every, payload=args.payload, searches=args.searches, answer=args.answer
    )
    vocab = len(adapter.tokenizer)

    def processor(request, row, logits):
        logits = schedule(request, row, logits)
        logits[vocab:] = float("-inf")  # the stand-in's embedding rows past the tokenizer
        return logits

    counting = Counting(adapter)
    opts = DecodeOptions(
        max_new_tokens=10_000, top_k=args.top_k, max_passage_tokens=args.passage_tokens, kv_cache=kv_cache
    )
    dec = SearchInterleavedDecoder(counting, SyntheticSearcher(args.passage_tokens), opts, logits_processor=processor)
    t0 = time.perf_counter()
    trajs = [t for i in range(0, len(reqs), batch) for t in dec.decode(reqs[i : i + batch])]
    wall = time.perf_counter() - t0
    return trajs, wall, counting.positions


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["tiny", "mini"], default="tiny")
    p.add_argument("--model", choices=["auto", "pixsearch", "standin"], default="auto")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--samples", type=int, default=None, help="default: --batch")
    p.add_argument("--searches", type=int, default=3)
    p.add_argument("--every", type=int, default=12, help="generated tokens before each search")
    p.add_argument("--payload", type=int, default=6, help="query tokens per search")
    p.add_argument("--answer", type=int, default=12, help="generated tokens after the last search")
    p.add_argument("--top-k", type=int, default=3)
    p.add_argument("--passage-tokens", type=int, default=48)
    p.add_argument(
        "--template",
        choices=sorted(TEMPLATES),
        default="vicuna_v1",
        help="chat template of the prompts (as evaluation builds them)",
    )
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2, help="best wall time of this many runs per configuration")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    adapter, desc = build_model(args.size, args.model)
    n = args.samples or args.batch
    image = None
    if getattr(adapter, "supports_images", False):
        import numpy as np

        image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    questions = [" ".join(WORDS[(i * 13 + j) % 500] for j in range(16 + i % 9)) for i in range(n)]
    reqs = [
        DecodeRequest(f"s{i}", generation_prompt(args.template, q, with_image=image is not None), image, question=q)
        for i, q in enumerate(questions)
    ]
    print(
        f"# model: {desc}; best of {args.repeats} runs; {n} samples, {args.searches} searches each, top-{args.top_k} x {args.passage_tokens} "
        f"tokens of evidence per search; torch threads {torch.get_num_threads()}"
    )
    for kv in (True, False):  # warm-up: first calls pay for lazy initialisation
        run(adapter, reqs[:2], args, kv, 2)
    results = {}
    for batch in (args.batch, 1):
        for kv in (True, False):
            runs = [run(adapter, reqs, args, kv, batch) for _ in range(args.repeats)]
            results[(batch, kv)] = min(runs, key=lambda r: r[1])
            print(
                f"# done: batch {batch}, {'kv cache' if kv else 're-encode'}: {results[(batch, kv)][1]:.2f} s",
                flush=True,
            )
    ref = [t.tokens for t in results[(args.batch, True)][0]]
    same = all([t.tokens for t in r[0]] == ref for r in results.values())
    gen = sum(t.generated_tokens for t in results[(args.batch, True)][0])
    print(f"{'batch':>5} {'context':>10} {'wall s':>8} {'gen tok/s':>10} {'LM positions':>13}")
    for (batch, kv), (_, wall, pos) in results.items():
        print(f"{batch:>5} {'kv cache' if kv else 're-encode':>10} {wall:>8.2f} {gen / wall:>10.1f} {pos:>13}")
    w = {k: v[1] for k, v in results.items()}
    print(f"kv cache vs re-encode, batch {args.batch}: {w[(args.batch, False)] / w[(args.batch, True)]:.2f}x faster")
    print(f"kv cache vs re-encode, batch 1: {w[(1, False)] / w[(1, True)]:.2f}x faster")
    print(f"batch {args.batch} vs batch 1 (kv cache): {w[(1, True)] / w[(args.batch, True)]:.2f}x faster")
    print(
        f"identical tokens in all four runs: {'yes' if same else 'NO'}; searches per sample: "
        f"{sorted({len(t.searches) for t in results[(args.batch, True)][0]})}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
