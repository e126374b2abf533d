"""The tiny SAM encoder's conv stem: same token grid as the patchify it replaces, built through the model config,
and bad patch sizes refused with the value named."""

import pytest
import torch

from pixsearch_core.modeling.sam import build_sam_parts, conv_stem


@pytest.mark.parametrize("patch", [4, 8, 16])
def test_conv_stem_gives_the_patchify_grid(patch):
    torch.manual_seed(0)
    conv = build_sam_parts("tiny", image_size=64, prompt_dim=16, encoder_dim=24, patch_size=patch, stem="conv")
    flat = build_sam_parts("tiny", image_size=64, prompt_dim=16, encoder_dim=24, patch_size=patch)
    x = torch.randn(2, 3, 64, 64)
    a, b = conv.image_encoder(x), flat.image_encoder(x)
    assert a.shape == b.shape == (2, 16, 64 // patch, 64 // patch)
    assert conv.embedding_size == flat.embedding_size == 64 // patch
    # log2(patch) stride-2 3x3 convolutions, then the 1x1 to the encoder width
    convs = [m for m in conv.image_encoder.patch_embed.proj if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride for m in convs] == [(2, 2)] * (patch.bit_length() - 1) + [(1, 1)]
    assert convs[-1].out_channels == 24


def test_conv_stem_sees_inside_a_patch():
    """A patchify token is one linear map of its block; the conv stem's token is not: moving a dot inside one patch
    changes it non-linearly. Here: the stem's output is not additive over two dots (a linear map would be)."""
    torch.manual_seed(0)
    stem = conv_stem(8, 4)
    z = torch.zeros(1, 3, 8, 8)
    a, b = z.clone(), z.clone()
    a[..., 1, 1] = 1.0
    b[..., 2, 2] = 1.0
    lin = stem(a) + stem(b) - stem(z)
    assert not torch.allclose(stem(a + b), lin, atol=1e-4)


@pytest.mark.parametrize("patch", [6, 12])
def test_conv_stem_refuses_a_patch_size_not_a_power_of_two(patch):
    with pytest.raises(ValueError, match=f"power of 2.*got {patch}"):
        build_sam_parts("tiny", image_size=12 * 8, patch_size=patch, stem="conv")


def test_unknown_stem_is_named():
    with pytest.raises(ValueError, match="'pixel'.*patch, conv"):
        build_sam_parts("tiny", image_size=64, patch_size=16, stem="pixel")


def test_model_config_builds_the_conv_stem():
    from pixsearch_core.modeling.build import build_tiny

    model = build_tiny(overrides=["sam.encoder_stem=conv"])
    assert isinstance(model.sam_image_encoder.patch_embed.proj, torch.nn.Sequential)
