"""Writes the VAE reference fixtures that Loom's VAE tests read (Tests/Fixtures/vae/).

Run from the repository root with the benchmark venv (torch + diffusers, see
Benchmarks/pytorch/README.md):

    .venv-bench/bin/python scripts/make-vae-fixtures.py            # write, then re-check bytes
    .venv-bench/bin/python scripts/make-vae-fixtures.py --check    # only compare with the files on disk

The tests themselves need no Python; the files are committed.

Every model is a small `diffusers.AutoencoderKL` with random float32 weights. After construction
every parameter is drawn again (conv/linear weights N(0, 1/fan_in), GroupNorm weights 1 + 0.1 N,
biases 0.1 N) so that no parameter sits at a default that would hide a loading mistake.

Fixtures
--------
sd_tiny/            diffusers layout, as `stabilityai/sd-vae-ft-ema` ships it: config.json and
                    diffusion_pytorch_model.safetensors written by `save_pretrained`. 4 levels (f8),
                    GroupNorm with 8 groups, mid-block attention only.
va_tiny/            the CompVis/LDM key layout that VA-VAE (LightningDiT) checkpoints use:
                    vavae_tiny.safetensors (LDM names at the top level) and vavae_tiny.pt
                    (`torch.save({"state_dict": ...})`, with extra loss/aux keys a loader must skip).
                    ch 32, ch_mult (1, 2, 1) (f4), 1 res block, z 8, 32 groups, mid attention only.
va_tiny_attn/       LDM layout like va_tiny, but shaped like VA-VAE itself: attention also in the
                    lowest-resolution level (encoder.down.{last}.attn.*, decoder.up.{last}.attn.*)
                    and 2 res blocks per level. ch 32, ch_mult (1, 1) (f2), z 8. Its golden uses a
                    batch of 1 and a non-square 16x24 image.
<name>.golden.safetensors
                    image, posterior_mean, posterior_logvar, noise, posterior_sample, latent,
                    decoded, reconstruction (see `golden` below); `__metadata__` holds the configs.
"""
import argparse
import collections
import hashlib
import json
import math
import os
import re
import sys
import tempfile

import torch
import torch.nn.functional as F

try:
    import diffusers
    from diffusers import AutoencoderKL
    from safetensors.torch import load_file
except ImportError as error:  # pragma: no cover - environment problem
    sys.exit(f"make-vae-fixtures: needs diffusers and safetensors ({error}); see Benchmarks/pytorch/README.md")

diffusers.utils.logging.set_verbosity_error()

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "vae")

# --------------------------------------------------------------------------------------------
# Configurations
# --------------------------------------------------------------------------------------------

SD_TINY = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4,
    block_out_channels=[16, 32, 32, 32],
    layers_per_block=1,
    act_fn="silu",
    latent_channels=4,
    norm_num_groups=8,
    sample_size=32,
    scaling_factor=0.18215,
)

# LDM ddconfig-style descriptions; `diffusers_config` turns them into AutoencoderKL arguments.
VA_TINY_LDM = dict(
    double_z=True, z_channels=8, embed_dim=8, resolution=16, in_channels=3, out_ch=3,
    ch=32, ch_mult=[1, 2, 1], num_res_blocks=1, attn_resolutions=[], dropout=0.0,
)
VA_TINY_ATTN_LDM = dict(
    double_z=True, z_channels=8, embed_dim=8, resolution=16, in_channels=3, out_ch=3,
    ch=32, ch_mult=[1, 1], num_res_blocks=2, attn_resolutions=[8], dropout=0.0,
)

LDM_GROUPS = 32      # LDM's Normalize() hard-codes GroupNorm(32, C, eps=1e-6)


def ldm_attention_levels(ldm):
    """Levels (0 = full resolution) whose blocks carry attention, by LDM's own rule: the running
    resolution starts at `resolution` and halves after every level but the last."""
    levels, res = [], ldm["resolution"]
    for level in range(len(ldm["ch_mult"])):
        if res in ldm["attn_resolutions"]:
            levels.append(level)
        if level != len(ldm["ch_mult"]) - 1:
            res //= 2
    return levels


def diffusers_config(ldm):
    """AutoencoderKL arguments equivalent to an LDM ddconfig (needs ch_mult[0] == 1, z == embed_dim)."""
    assert ldm["ch_mult"][0] == 1 and ldm["z_channels"] == ldm["embed_dim"] and ldm["double_z"]
    n = len(ldm["ch_mult"])
    attn = ldm_attention_levels(ldm)
    down = ["AttnDownEncoderBlock2D" if i in attn else "DownEncoderBlock2D" for i in range(n)]
    # diffusers' up_blocks run from the lowest resolution up: up_blocks[i] is LDM level n-1-i.
    up = ["AttnUpDecoderBlock2D" if (n - 1 - i) in attn else "UpDecoderBlock2D" for i in range(n)]
    return dict(
        in_channels=ldm["in_channels"], out_channels=ldm["out_ch"],
        down_block_types=down, up_block_types=up,
        block_out_channels=[ldm["ch"] * m for m in ldm["ch_mult"]],
        layers_per_block=ldm["num_res_blocks"], act_fn="silu",
        latent_channels=ldm["z_channels"], norm_num_groups=LDM_GROUPS,
        sample_size=ldm["resolution"],
    )


# --------------------------------------------------------------------------------------------
# Model construction
# --------------------------------------------------------------------------------------------

def randomize_(model):
    """Draws every parameter again from the global RNG (call torch.manual_seed first)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim >= 2:                                  # conv / linear weight
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape) / math.sqrt(fan_in))
            elif name.endswith("weight"):                    # GroupNorm scale
                p.copy_(1.0 + 0.1 * torch.randn(p.shape))
            else:                                            # any bias
                p.copy_(0.1 * torch.randn(p.shape))


def build(config, seed):
    torch.manual_seed(seed)
    model = AutoencoderKL(**config).eval()
    assert all(p.dtype == torch.float32 for p in model.parameters())
    randomize_(model)
    return model


# --------------------------------------------------------------------------------------------
# diffusers names -> LDM names
# --------------------------------------------------------------------------------------------

_RESNET_PARTS = {"norm1": "norm1", "conv1": "conv1", "norm2": "norm2", "conv2": "conv2",
                 "conv_shortcut": "nin_shortcut"}
_ATTN_PARTS = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}


def _resnet(rest):
    part, leaf = rest.rsplit(".", 1)
    return f"{_RESNET_PARTS[part]}.{leaf}"


def _attn(rest):
    part, leaf = rest.rsplit(".", 1)
    return f"{_ATTN_PARTS[part]}.{leaf}"


def ldm_name(key, levels):
    """The LDM / VA-VAE name of one diffusers AutoencoderKL key (`levels` = number of levels)."""
    fixed = {
        "conv_norm_out": "norm_out",
    }
    m = re.fullmatch(r"(quant_conv|post_quant_conv)\.(weight|bias)", key)
    if m:
        return key
    side, rest = key.split(".", 1)
    assert side in ("encoder", "decoder"), key
    m = re.fullmatch(r"(conv_in|conv_out|conv_norm_out)\.(weight|bias)", rest)
    if m:
        return f"{side}.{fixed.get(m[1], m[1])}.{m[2]}"
    m = re.fullmatch(r"mid_block\.resnets\.(\d)\.(.+)", rest)
    if m:
        return f"{side}.mid.block_{int(m[1]) + 1}.{_resnet(m[2])}"
    m = re.fullmatch(r"mid_block\.attentions\.0\.(.+)", rest)
    if m:
        return f"{side}.mid.attn_1.{_attn(m[1])}"
    if side == "encoder":
        m = re.fullmatch(r"down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", rest)
        if m:
            kind = "block" if m[2] == "resnets" else "attn"
            part = _resnet(m[4]) if m[2] == "resnets" else _attn(m[4])
            return f"encoder.down.{m[1]}.{kind}.{m[3]}.{part}"
        m = re.fullmatch(r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(weight|bias)", rest)
        if m:
            return f"encoder.down.{m[1]}.downsample.conv.{m[2]}"
    else:
        m = re.fullmatch(r"up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)", rest)
        if m:
            level = levels - 1 - int(m[1])          # LDM numbers decoder levels by resolution
            kind = "block" if m[2] == "resnets" else "attn"
            part = _resnet(m[4]) if m[2] == "resnets" else _attn(m[4])
            return f"decoder.up.{level}.{kind}.{m[3]}.{part}"
        m = re.fullmatch(r"up_blocks\.(\d+)\.upsamplers\.0\.conv\.(weight|bias)", rest)
        if m:
            return f"decoder.up.{levels - 1 - int(m[1])}.upsample.conv.{m[2]}"
    raise KeyError(f"no LDM name for {key}")


def to_ldm(state_dict, levels):
    """diffusers state dict -> LDM state dict (attention Linear [C,C] -> 1x1 conv [C,C,1,1])."""
    out = {}
    for key, value in state_dict.items():
        name = ldm_name(key, levels)
        value = value.detach().clone().contiguous()
        if re.search(r"\.(attn_1|attn\.\d+)\.(q|k|v|proj_out)\.weight$", name):
            assert value.ndim == 2, (key, value.shape)
            value = value[:, :, None, None].contiguous()
        assert name not in out, name
        out[name] = value
    return collections.OrderedDict(sorted(out.items()))


# --------------------------------------------------------------------------------------------
# An independent LDM-layout forward pass (for checking the mapping), written from the LDM rules:
# GroupNorm(32, eps 1e-6), swish, Downsample = pad (0,1,0,1) + 3x3 stride-2 conv without padding,
# Upsample = nearest x2 + 3x3 conv, single-head attention scaled by C^-0.5, 1x1 conv q/k/v/proj_out.
# --------------------------------------------------------------------------------------------

def _gn(sd, p, x):
    return F.group_norm(x, LDM_GROUPS, sd[p + ".weight"], sd[p + ".bias"], eps=1e-6)


def _conv(sd, p, x, stride=1, padding=1):
    return F.conv2d(x, sd[p + ".weight"], sd[p + ".bias"], stride=stride, padding=padding)


def _resblock(sd, p, x):
    h = _conv(sd, p + ".conv1", F.silu(_gn(sd, p + ".norm1", x)))
    h = _conv(sd, p + ".conv2", F.silu(_gn(sd, p + ".norm2", h)))
    if p + ".nin_shortcut.weight" in sd:
        x = _conv(sd, p + ".nin_shortcut", x, padding=0)
    return x + h


def _attnblock(sd, p, x):
    b, c, hh, ww = x.shape
    h = _gn(sd, p + ".norm", x)
    q, k, v = (_conv(sd, f"{p}.{n}", h, padding=0).reshape(b, c, hh * ww) for n in "qkv")
    w = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c ** -0.5, dim=2)
    out = torch.einsum("bij,bcj->bci", w, v).reshape(b, c, hh, ww)
    return x + _conv(sd, p + ".proj_out", out, padding=0)


def ldm_encode(sd, ldm, x):
    n = len(ldm["ch_mult"])
    h = _conv(sd, "encoder.conv_in", x)
    for i in range(n):
        for j in range(ldm["num_res_blocks"]):
            h = _resblock(sd, f"encoder.down.{i}.block.{j}", h)
            if f"encoder.down.{i}.attn.{j}.q.weight" in sd:
                h = _attnblock(sd, f"encoder.down.{i}.attn.{j}", h)
        if i != n - 1:
            h = _conv(sd, f"encoder.down.{i}.downsample.conv", F.pad(h, (0, 1, 0, 1)), stride=2, padding=0)
    h = _resblock(sd, "encoder.mid.block_1", h)
    h = _attnblock(sd, "encoder.mid.attn_1", h)
    h = _resblock(sd, "encoder.mid.block_2", h)
    h = _conv(sd, "encoder.conv_out", F.silu(_gn(sd, "encoder.norm_out", h)))
    return _conv(sd, "quant_conv", h, padding=0)


def ldm_decode(sd, ldm, z):
    n = len(ldm["ch_mult"])
    h = _conv(sd, "decoder.conv_in", _conv(sd, "post_quant_conv", z, padding=0))
    h = _resblock(sd, "decoder.mid.block_1", h)
    h = _attnblock(sd, "decoder.mid.attn_1", h)
    h = _resblock(sd, "decoder.mid.block_2", h)
    for i in reversed(range(n)):
        for j in range(ldm["num_res_blocks"] + 1):
            h = _resblock(sd, f"decoder.up.{i}.block.{j}", h)
            if f"decoder.up.{i}.attn.{j}.q.weight" in sd:
                h = _attnblock(sd, f"decoder.up.{i}.attn.{j}", h)
        if i != 0:
            h = _conv(sd, f"decoder.up.{i}.upsample.conv", F.interpolate(h, scale_factor=2.0, mode="nearest"))
    return _conv(sd, "decoder.conv_out", F.silu(_gn(sd, "decoder.norm_out", h)))


# --------------------------------------------------------------------------------------------
# Goldens and checks
# --------------------------------------------------------------------------------------------

def golden(model, shape, seed):
    """The reference tensors for one model and image shape [B, 3, H, W]."""
    torch.manual_seed(seed)
    b, _, hgt, wid = shape
    f = 2 ** (len(model.config.block_out_channels) - 1)
    z = model.config.latent_channels
    image = torch.rand(shape) * 2 - 1
    noise = torch.randn(b, z, hgt // f, wid // f)
    latent = torch.randn(b, z, hgt // f, wid // f)
    with torch.no_grad():
        dist = model.encode(image).latent_dist          # logvar is clamped to [-30, 20]
        mean, logvar = dist.mean, dist.logvar
        sample = mean + torch.exp(0.5 * logvar) * noise
        decoded = model.decode(latent).sample            # raw decoder output: no scaling, no clamp
        reconstruction = model.decode(mean).sample
    out = collections.OrderedDict(
        image=image, posterior_mean=mean, posterior_logvar=logvar, noise=noise,
        posterior_sample=sample, latent=latent, decoded=decoded, reconstruction=reconstruction,
    )
    return collections.OrderedDict((k, v.to(torch.float32).contiguous().clone()) for k, v in out.items())


def check_every_parameter_matters(model, shape, name, strict):
    """Gradients of a random projection of the outputs: reports parameters with zero gradient."""
    torch.manual_seed(1234)
    image = torch.rand(shape) * 2 - 1
    f = 2 ** (len(model.config.block_out_channels) - 1)
    latent = torch.randn(shape[0], model.config.latent_channels, shape[2] // f, shape[3] // f)
    model.zero_grad(set_to_none=True)
    dist = model.encode(image).latent_dist
    dec = model.decode(latent).sample
    loss = sum((t * torch.randn_like(t)).sum() for t in (dist.mean, dist.logvar, dec))
    loss.backward()
    scale = {n: (p.grad.abs().max().item() if p.grad is not None else 0.0) for n, p in model.named_parameters()}
    typical = sorted(scale.values())[len(scale) // 2]
    dead = [n for n, v in scale.items() if v <= 1e-6 * typical]
    model.zero_grad(set_to_none=True)
    # Inherent to the architecture (only rounding is left of their gradients): the key bias adds
    # the same q.b_k to every logit of a softmax row; a conv bias that feeds a GroupNorm whose
    # groups hold one channel is removed by the normalisation.
    inherent = [n for n in dead if n.endswith(("to_k.bias", "conv1.bias", "conv_in.bias"))]
    others = [n for n in dead if n not in inherent]
    print(f"  {name}: {len(scale)} parameter tensors; without effect by construction: {len(inherent)} "
          f"({', '.join(sorted(set(n.rsplit('.', 2)[-2] + '.bias' for n in inherent)))})"
          + (f"; others: {others}" if strict else ""))
    if strict:
        assert not others, others
    elif others:
        # With 32-channel stages and LDM's 32 groups every group holds one channel, so a bias
        # added to a stream that only GroupNorms read (lowest level, mid, last decoder level)
        # is a per-channel constant that the normalisation removes.
        print(f"  {name}: biases removed by 1-channel GroupNorm groups downstream: {len(others)}")


def write_safetensors(tensors, path, metadata=None):
    """A plain safetensors file, written here so that its bytes do not depend on a hash map's
    order (the safetensors library writes `__metadata__` in hash order): header JSON with sorted
    metadata first, then the tensors in the given order, little-endian, contiguous."""
    dtypes = {torch.float32: "F32", torch.int64: "I64"}
    header, blobs, offset = collections.OrderedDict(), [], 0
    if metadata:
        header["__metadata__"] = collections.OrderedDict(sorted(metadata.items()))
    for name, tensor in tensors.items():
        t = tensor.detach().contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": dtypes[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as fh:
        fh.write(len(text).to_bytes(8, "little"))
        fh.write(text)
        for data in blobs:
            fh.write(data)
    back = load_file(path)                       # the library must read it back unchanged
    assert set(back) == set(tensors)
    for name, tensor in tensors.items():
        assert torch.equal(back[name], tensor), name


def metadata(config, ldm=None, extra=None):
    meta = {
        "generator": "scripts/make-vae-fixtures.py",
        "diffusers_config": json.dumps(config, sort_keys=True),
        "torch": torch.__version__.split("+")[0],
        "diffusers": diffusers.__version__,
        "logvar_clamp": "[-30, 20]",
        "posterior_sample": "posterior_mean + exp(0.5 * posterior_logvar) * noise",
        "decoded": "model.decode(latent), raw (no scaling factor, no clamp)",
        "reconstruction": "model.decode(posterior_mean), raw",
    }
    if ldm is not None:
        meta["ldm_ddconfig"] = json.dumps(ldm, sort_keys=True)
    if extra:
        meta.update(extra)
    return meta


def max_abs_report(name, tensors):
    parts = ", ".join(f"{k} {tuple(v.shape)} max|.|={v.abs().max().item():.4g}" for k, v in tensors.items())
    print(f"  {name}: {parts}")


# --------------------------------------------------------------------------------------------
# Writers
# --------------------------------------------------------------------------------------------

def write_sd_tiny(out):
    model = build(SD_TINY, seed=0)
    check_every_parameter_matters(model, (1, 3, 32, 32), "sd_tiny", strict=True)
    folder = os.path.join(out, "sd_tiny")
    model.save_pretrained(folder, safe_serialization=True)
    # What we wrote must load back into the same numbers through diffusers' own loader.
    again = AutoencoderKL.from_pretrained(folder).eval()
    ref = model.state_dict()
    for k, v in again.state_dict().items():
        assert torch.equal(v, ref[k]), k
    saved = load_file(os.path.join(folder, "diffusion_pytorch_model.safetensors"))
    assert set(saved) == set(ref), "save_pretrained wrote other keys than the model has"
    tensors = golden(model, (2, 3, 32, 32), seed=100)
    write_safetensors(tensors, os.path.join(out, "sd_tiny.golden.safetensors"),
                      metadata=metadata(SD_TINY, extra={"scaling_factor": "0.18215"}))
    max_abs_report("sd_tiny", tensors)
    return saved


def fake_extras():
    """Keys of the kind a VA-VAE / LDM Lightning checkpoint carries besides the autoencoder:
    loss (LPIPS + PatchGAN discriminator, taming-transformers names), the VF-alignment projection
    and the frozen foundation model. A loader must ignore them."""
    g = torch.Generator().manual_seed(7)
    return collections.OrderedDict([
        ("loss.logvar", torch.zeros(())),
        ("loss.discriminator.main.0.weight", torch.randn(8, 3, 4, 4, generator=g)),
        ("loss.discriminator.main.0.bias", torch.randn(8, generator=g)),
        ("loss.discriminator.main.3.running_mean", torch.randn(8, generator=g)),
        ("loss.discriminator.main.3.num_batches_tracked", torch.tensor(12, dtype=torch.int64)),
        ("loss.perceptual_loss.lin0.model.1.weight", torch.randn(1, 8, 1, 1, generator=g)),
        ("linear_proj.weight", torch.randn(16, 8, 1, 1, generator=g)),
        ("foundation_model.model.cls_token", torch.randn(1, 1, 16, generator=g)),
    ])


def write_ldm(out, name, ldm, shape, seed, with_pt, roundtrip_with_diffusers):
    config = diffusers_config(ldm)
    model = build(config, seed=seed)
    check_every_parameter_matters(model, shape, name, strict=False)
    levels = len(ldm["ch_mult"])
    ref = model.state_dict()
    sd = to_ldm(ref, levels)

    # 1. diffusers' own LDM -> diffusers converter must give back the original state dict.
    if roundtrip_with_diffusers:
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
        back = convert_ldm_vae_checkpoint({k: v.clone() for k, v in sd.items()}, dict(config))
        assert set(back) == set(ref), (set(back) ^ set(ref))
        for k, v in ref.items():
            assert back[k].shape == v.shape and torch.equal(back[k], v), k
        print(f"  {name}: convert_ldm_vae_checkpoint round trip equals the diffusers state dict")
    # 2. an independent LDM-layout forward on the LDM keys must match diffusers.
    torch.manual_seed(99)
    x = torch.rand(shape) * 2 - 1
    f = 2 ** (levels - 1)
    z = torch.randn(shape[0], ldm["z_channels"], shape[2] // f, shape[3] // f)
    with torch.no_grad():
        moments = model._encode(x)
        dec = model.decode(z).sample
        e_err = (ldm_encode(sd, ldm, x) - moments).abs().max().item()
        d_err = (ldm_decode(sd, ldm, z) - dec).abs().max().item()
    print(f"  {name}: LDM-layout reference vs diffusers: encode max err {e_err:.2e}, decode {d_err:.2e}")
    assert e_err < 1e-4 * max(1.0, moments.abs().max().item())
    assert d_err < 1e-4 * max(1.0, dec.abs().max().item())

    folder = os.path.join(out, name)
    os.makedirs(folder, exist_ok=True)
    meta = {"layout": "ldm", "ldm_ddconfig": json.dumps(ldm, sort_keys=True),
            "norm_num_groups": str(LDM_GROUPS), "norm_eps": "1e-6"}
    write_safetensors(sd, os.path.join(folder, "vavae_tiny.safetensors"), metadata=meta)
    if with_pt:
        nested = collections.OrderedDict(sd)
        nested.update(fake_extras())
        torch.save({"state_dict": nested, "epoch": 3, "global_step": 1000},
                   os.path.join(folder, "vavae_tiny.pt"))
    tensors = golden(model, shape, seed=seed + 100)
    write_safetensors(tensors, os.path.join(out, f"{name}.golden.safetensors"), metadata=metadata(config, ldm))
    max_abs_report(name, tensors)
    return sd


def write_all(out):
    os.makedirs(out, exist_ok=True)
    sd_keys = write_sd_tiny(out)
    attn_keys = sorted(k for k in sd_keys if "attentions" in k)
    print("  sd_tiny attention keys:", ", ".join(f"{k} {tuple(sd_keys[k].shape)}" for k in attn_keys
                                                 if k.startswith("encoder.")))
    write_ldm(out, "va_tiny", VA_TINY_LDM, (2, 3, 16, 16), seed=1, with_pt=True, roundtrip_with_diffusers=True)
    write_ldm(out, "va_tiny_attn", VA_TINY_ATTN_LDM, (1, 3, 16, 24), seed=2, with_pt=False,
              roundtrip_with_diffusers=False)   # diffusers' converter has no per-level attention


def files_under(folder):
    found = {}
    for base, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(base, n)
            with open(path, "rb") as fh:
                found[os.path.relpath(path, folder)] = fh.read()
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only regenerate in a temporary folder and compare with Tests/Fixtures/vae")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if not args.check:
        print(f"writing {os.path.normpath(OUT)}")
        write_all(OUT)
    print("regenerating in a temporary folder to compare bytes")
    with tempfile.TemporaryDirectory() as tmp:
        write_all(tmp)
        fresh, disk = files_under(tmp), files_under(OUT)
    total = 0
    bad = []
    for rel in sorted(set(fresh) | set(disk)):
        a, b = fresh.get(rel), disk.get(rel)
        if a != b:
            bad.append(rel)
            continue
        total += len(a)
        print(f"  {rel:45s} {len(a):9d} bytes  sha256 {hashlib.sha256(a).hexdigest()[:16]}")
    print(f"  total {total} bytes")
    if bad:
        sys.exit(f"make-vae-fixtures: not reproduced byte for byte: {bad}")
    print("ok: byte-identical on regeneration")


if __name__ == "__main__":
    main()
