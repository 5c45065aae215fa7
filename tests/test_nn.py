import pytest
import torch

from vitrestore.config import DiscriminatorConfig, GeneratorConfig
from vitrestore.nn.discriminator import Discriminator
from vitrestore.nn.generator import Generator
from vitrestore.nn.spectral import SpectralScale

TINY_G = dict(stem_channels=8, dims=(8, 16, 16), heads=(1, 2, 2), enc_depths=(1, 1, 2), dec_depths=(1, 1),
              window=4, mlp_ratio=1.0)


@pytest.mark.parametrize("h,w", [(37, 53), (8, 8), (64, 21), (1, 1)])
@pytest.mark.parametrize("upscale", [1, 2, 4])
def test_generator_any_size(h, w, upscale):
    g = Generator(GeneratorConfig(**TINY_G), cond_channels=2, scale=upscale)
    y = g(torch.rand(2, 3, h, w), torch.rand(2, 2, h, w))
    assert y.shape == (2, 3, h * upscale, w * upscale)


def test_generator_backward_and_residual():
    g = Generator(GeneratorConfig(**TINY_G))
    x = torch.rand(1, 3, 24, 40)
    assert torch.equal(g(x), x)  # zero-initialised head: starts as the identity (global residual)
    torch.nn.init.normal_(g.head[-2].weight, std=0.1)
    y = g(x)
    assert not torch.equal(y, x)
    y.mean().backward()
    assert all(p.grad is not None for p in g.parameters() if p.requires_grad)


@pytest.mark.parametrize("token_upsample", ["shuffle", "bilinear"])
def test_generator_token_upsample(token_upsample):
    """Both ways of upsampling tokens keep any size and start as the identity; bilinear has no
    periodic pattern: a constant token field gives a constant feature map."""
    g = Generator(GeneratorConfig(patch_stride=4, token_upsample=token_upsample, **TINY_G))
    x = torch.rand(1, 3, 27, 45)
    assert torch.equal(g(x), x)
    for up, c_in in ((g.to_pixels, 8), (g.ups[0], 16)):  # tokens -> pixels x4, decoder x2
        feats = up(torch.ones(1, c_in, 6, 6))  # (1, C, 24, 24) or (1, C, 12, 12)
        inner = feats[..., 4:-4, 4:-4]  # away from the conv's zero padding
        periodic = not torch.allclose(inner, inner[..., :1, :1].expand_as(inner), atol=1e-6)
        assert periodic == (token_upsample == "shuffle")
    with pytest.raises(ValueError, match="token_upsample"):
        Generator(GeneratorConfig(patch_stride=4, token_upsample="nearest", **TINY_G))


def test_generator_needs_its_condition():
    g = Generator(GeneratorConfig(**TINY_G), cond_channels=1)
    with pytest.raises(ValueError, match="condition"):
        g(torch.rand(1, 3, 16, 16))


def test_generator_attention_is_windowed():
    """Changing a pixel far away must not change the output at the other corner beyond the receptive
    field of one window at the coarsest level plus convs: cost is local, hence linear in pixels."""
    torch.manual_seed(0)
    cfg = GeneratorConfig(**{**TINY_G, "dims": (8, 16), "heads": (1, 2), "enc_depths": (1, 1), "dec_depths": (1,)})
    g = Generator(cfg)
    torch.nn.init.normal_(g.head[-2].weight, std=0.1)
    x = torch.rand(1, 3, 128, 128)
    x2 = x.clone()
    x2[:, :, -1, -1] = 0
    d = (g(x) - g(x2)).abs()
    assert d[:, :, -1, -1].max().item() > 0
    assert d[:, :, :32, :32].max().item() == 0


@pytest.mark.parametrize("h,w", [(32, 32), (48, 80)])
def test_discriminator_patch_logits(h, w):
    d = Discriminator(DiscriminatorConfig(in_channels=5, dim=16, patch=4, depth=2, heads=2))
    logits, feats = d(torch.rand(2, 2, h, w), torch.rand(2, 3, h, w))
    assert logits.shape == (2, 1, h // 4, w // 4)
    assert len(feats) == 2
    logits.mean().backward()
    assert all(p.grad is not None for p in d.parameters() if p.requires_grad)


def test_improved_spectral_norm_keeps_initial_gain_and_tracks_sigma():
    lin = torch.nn.Linear(16, 8)
    sn = SpectralScale(lin.weight)
    sn.train()
    w = lin.weight.detach()
    assert torch.allclose(sn(w), w, rtol=1e-3, atol=1e-5)  # at init, W_hat = W
    w2 = w * 3
    for _ in range(30):
        out = sn(w2)
    assert torch.allclose(out, w, rtol=1e-2, atol=1e-4)  # scaling W up is normalised away


def _block_channels_first(blk, x: torch.Tensor, mask) -> torch.Tensor:
    """The block written out the plain way, on a (B, C, H, W) map: the reference the channels-last
    Stage must reproduce."""
    import torch.nn.functional as F

    from vitrestore.nn.blocks import window_merge, window_partition

    b, c, h, w = x.shape
    s = blk.shift_for(h, w)
    t = blk.norm1(x.permute(0, 2, 3, 1))
    if s:
        t = torch.roll(t, (-s, -s), dims=(1, 2))
    t = window_merge(blk.attn(window_partition(t, blk.window), mask if s else None), blk.window, b, h, w)
    if s:
        t = torch.roll(t, (s, s), dims=(1, 2))
    x = x + t.permute(0, 3, 1, 2)
    u = blk.norm2(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    return x + blk.mlp.fc2(F.gelu(blk.mlp.dw(blk.mlp.fc1(u))))


def test_channels_last_stage_matches_the_channels_first_blocks():
    from vitrestore.nn.blocks import Stage, _shifted_window_mask

    torch.manual_seed(0)
    stage = Stage(16, 3, 2, 4, 2.0).eval()
    for p in stage.parameters():  # biases and norms away from their initial 0 / 1
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 16, 24, 16)
    mask = _shifted_window_mask(24, 16, 4, 2, x.device)
    ref = x
    for blk in stage:
        ref = _block_channels_first(blk, ref, mask)
    with torch.no_grad():
        assert torch.allclose(stage(x), ref, atol=1e-5)


def test_window_mask_cache_serves_inference_then_training(monkeypatch):
    from vitrestore.nn import blocks

    blocks._cached_mask.cache_clear()
    g = Generator(GeneratorConfig(dims=(8, 16), heads=(1, 2), enc_depths=(2, 2), dec_depths=(2,), window=4,
                                  stem_channels=8))
    x = torch.rand(2, 3, 40, 40)
    with torch.inference_mode():
        g(x)  # fills the cache inside inference mode
    assert blocks._cached_mask.cache_info().currsize > 0
    g(x).mean().backward()  # the cached masks are plain tensors: autograd may use them
    assert all(p.grad is not None for p in g.parameters() if p.requires_grad)
    kept = blocks._cached_mask.cache_info().currsize
    monkeypatch.setattr(blocks, "CACHE_MASK_BYTES", 1 << 16)
    big = blocks.shifted_window_mask(64, 64, 8, 4, x)  # 1 MB, over the (patched) limit: made, not kept
    assert big.shape == (64, 64, 64) and blocks._cached_mask.cache_info().currsize == kept


def test_encoder_stays_fp32_under_bf16_autocast():
    """bf16 would round the input pixels themselves: the stem and patch embedding run in fp32, and
    the whole generator under bf16 autocast stays close to fp32."""
    from vitrestore.nn.encoder import ImageEncoder

    torch.manual_seed(0)
    enc = ImageEncoder(3, 8, 16, 2)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        stem32, tok32 = enc(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            stem16, tok16 = enc(x)
    assert stem16.dtype == torch.bfloat16 and tok16.dtype == torch.float32
    assert torch.equal(stem16, stem32.to(torch.bfloat16)) and torch.equal(tok16, tok32)
    g = Generator(GeneratorConfig(dims=(8, 16), heads=(1, 2), enc_depths=(1, 1), dec_depths=(1,), window=4,
                                  stem_channels=8)).eval()
    for p in g.head.parameters():  # a head that is not zero, so the network's output counts
        p.data.normal_(0, 0.1)
    x = torch.rand(1, 3, 40, 40)
    with torch.no_grad():
        ref = g(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = g(x).float()
    assert 0 < float((half - ref).abs().max()) < 0.05


def test_every_image_of_a_batch_gets_the_same_window_masks():
    """A batch gives each image what it gives alone (the shifted-window masks broadcast to every
    image whatever the batch: no branch on it, so an ONNX trace holds for any batch), and the
    relative-position index made in inference mode serves training."""
    from vitrestore.nn import blocks

    blocks.relative_index.cache_clear()
    torch.manual_seed(0)
    g = Generator(GeneratorConfig(dims=(8, 16), heads=(1, 2), enc_depths=(2, 2), dec_depths=(2,), window=4,
                                  stem_channels=8)).eval()
    for p in g.head.parameters():
        p.data.normal_(0, 0.1)
    x = torch.rand(3, 3, 40, 56)
    with torch.inference_mode():
        batch = g(x)
        alone = torch.cat([g(x[i : i + 1]) for i in range(3)])
    assert torch.allclose(batch, alone, atol=1e-5)
    g(x[:2]).mean().backward()
    assert g.enc_stages[0][1].attn.rel_bias.grad is not None
    masks = torch.rand(6, 2, 16, 16)  # (nW, heads, N, N)
    assert torch.equal(blocks._per_window(masks, 18), masks.repeat(3, 1, 1, 1))


def test_relative_index_is_each_pairs_offset_and_made_on_first_use():
    """index[i, j] = (dy + w - 1) * (2w - 1) + (dx + w - 1) for tokens i, j of a w x w window;
    one per window size and device, not one per block, and none while a generator is built, so
    one builds on the meta device (the weights-file check) at any size, allocating nothing."""
    from vitrestore.nn import blocks

    w = 3
    idx = blocks.relative_index(w, torch.device("cpu"))
    for i in range(w * w):
        for j in range(w * w):
            dy, dx = i // w - j // w, i % w - j % w
            assert idx[i, j] == (dy + w - 1) * (2 * w - 1) + dx + w - 1
    assert blocks.relative_index(w, torch.device("cpu")) is idx
    with torch.device("meta"):
        big = Generator(GeneratorConfig(dims=(4096, 8192), heads=(1, 2), enc_depths=(4, 4), dec_depths=(4,),
                                        window=64))
    assert all(p.is_meta for p in big.parameters()) and not list(big.buffers())
