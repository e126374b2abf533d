"""The on-disk cache of the frozen SAM encoder's embeddings (model setting `sam_embedding_cache`): shared by fresh
model instances (other processes, later runs), bit-identical to encoding, keyed by the encoder's weights, robust to
a damaged entry, and not saved with checkpoints."""

from __future__ import annotations

import json

import numpy as np
import torch

from pixsearch_core.modeling.weights import save_trainable
from pixsearch_core.registry import get


def _images(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40 + 8 * i, 56, 3), dtype=np.uint8) for i in range(n)]


def _counting(model):
    calls = []
    model.sam_image_encoder.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    return calls


def _embed(model, images):
    model.eval()
    with torch.no_grad():
        return model.sam_image_embeddings(model.prepare_images(images))


def test_a_fresh_model_reads_the_embeddings_another_wrote_bit_for_bit(tmp_path):
    images = _images()
    plain = _embed(get("model", "tiny")(), images)
    first = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}"])
    calls_first = _counting(first)
    emb1, sizes1 = _embed(first, images + images[:1])  # a repeated image is encoded once
    assert sum(calls_first) == 3
    files = sorted(tmp_path.rglob("*.safetensors"))
    assert len(files) == 3 and len({f.parent.parent for f in files}) == 1  # one encoder fingerprint folder
    second = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}"])
    calls_second = _counting(second)
    emb2, sizes2 = _embed(second, images)
    assert calls_second == []  # all from disk
    assert second._disk.hits == 3 and second._disk.misses == 0
    assert torch.equal(emb2, plain[0]) and torch.equal(emb1[:3], plain[0])
    assert sizes2 == plain[1] == sizes1[:3]


def test_other_encoder_weights_do_not_read_the_cache(tmp_path):
    images = _images(2)
    _embed(get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}"]), images)
    other = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}"])
    with torch.no_grad():
        for p in other.sam_image_encoder.parameters():
            p.add_(0.05)
    calls = _counting(other)
    emb, _ = _embed(other, images)
    assert sum(calls) == 2
    assert len({f.parent.parent for f in tmp_path.rglob("*.safetensors")}) == 2
    pixels = torch.stack([other.sam_transform(a)[0] for a in other.prepare_images(images).arrays])
    with torch.no_grad():
        torch.testing.assert_close(emb, other.sam_image_encoder(pixels), rtol=0, atol=0)


def test_a_damaged_entry_is_recomputed_and_replaced(tmp_path, caplog):
    images = _images(2)
    want, _ = _embed(get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}"]), images)
    victim = sorted(tmp_path.rglob("*.safetensors"))[0]
    victim.write_bytes(victim.read_bytes()[:50])  # truncated, as a full disk would leave it
    model = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}"])
    calls = _counting(model)
    with caplog.at_level("WARNING"):
        got, _ = _embed(model, images)
    assert sum(calls) == 1 and "unreadable entry" in caplog.text and str(victim) in caplog.text
    torch.testing.assert_close(got, want)  # one image encoded alone: the batch changes the last bits
    again = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}"])
    calls_again = _counting(again)
    _embed(again, images)
    assert calls_again == []  # the entry was rewritten whole


def test_a_trainable_encoder_never_uses_the_disk_cache(tmp_path):
    model = get("model", "tiny")(
        overrides=[f"sam_embedding_cache={tmp_path}", "trainable.parts=[span_tagger,mask_head,sam_image_encoder]"]
    )
    _embed(model, _images(2))
    assert model._disk_cache() is None and not list(tmp_path.rglob("*.safetensors"))


def test_the_cache_folder_is_a_run_setting_not_saved_with_the_checkpoint(tmp_path):
    model = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path / 'cache'}"])
    save_trainable(model, str(tmp_path / "ckpt"))
    stored = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert "sam_embedding_cache" not in stored and stored["size"] == "tiny"


def test_the_fingerprint_covers_every_weight_and_buffer_including_scalars():
    """LiteMedSAM's TinyViT has BatchNorm layers, whose `num_batches_tracked` is a 0-d int64 buffer."""
    from torch import nn

    from pixsearch_core.modeling.image_cache import encoder_fingerprint

    def enc():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))

    a, b = enc(), enc()
    mean, std = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    assert encoder_fingerprint(a, 256, mean, std) == encoder_fingerprint(b, 256, mean, std)
    b[1].num_batches_tracked += 1
    assert encoder_fingerprint(a, 256, mean, std) != encoder_fingerprint(b, 256, mean, std)
    assert encoder_fingerprint(a, 256, mean, std) != encoder_fingerprint(a, 1024, mean, std)
    assert encoder_fingerprint(a, 256, mean, std) != encoder_fingerprint(a, 256, mean, [4.0, 5.0, 7.0])


def test_with_the_lru_off_each_image_is_encoded_or_read_once_per_call(tmp_path):
    images = _images()
    first = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}", "image_cache_size=0"])
    calls = _counting(first)
    _embed(first, images)
    assert calls == [3]  # one batch, no per-image re-encode
    second = get("model", "tiny")(overrides=[f"sam_embedding_cache={tmp_path}", "image_cache_size=0"])
    _embed(second, images)
    assert second._disk.hits == 3 and second._disk.misses == 0  # one read per image
