"""Writes importer fixtures made by the OFFICIAL model code (Tests/Fixtures/import/official_*).

For each model the official PyTorch module is built in a tiny configuration, every trainable
parameter is re-drawn at random (the official inits zero the adaLN and output layers, which would
make the forward trivial), and two files are written:

  official_<model>.pt                    torch.save(model.state_dict()): what `loom import` reads
  official_<model>.golden.safetensors    a golden file (Docs/conventions.md §5): the same weights as
                                         `param.*`, the inputs, and the official module's outputs and
                                         losses on them (no gradients)

Models and the code they come from:
  dit             facebookresearch/DiT models.py: DiT, learn_sigma, DDPM (q_sample and the "mse"
                  term of training_losses from its diffusion/ package)
  sit             willisma/SiT models.py: SiT with learn_sigma (its forward drops the sigma half;
                  out_final is the full unpatchified output, captured from the final layer) and
                  the linear velocity transport
  sit_ig          CVL-UESTC/Internal-Guidance SiT/models/sit.py (IG head `final_layer_xr` after
                  `encoder_depth` blocks) and its IGLoss (REPA convention)
  lightningdit    hustvl/LightningDiT models/lightningdit.py (SwiGLU, RMSNorm, 2-D RoPE) and its
                  transport with the cosine loss
  lightningdit_ig CVL-UESTC/Internal-Guidance LightningDiT/models/lightningdit.py (IG head) and its
                  transport

The flow losses call the official loss code itself; it draws t and the noise from torch's global
generator, so the generator is seeded before the call and the same draws are replayed to record
`t` and `eps`. Every model runs in eval mode (no label dropout); `y[0]` is the null label.

Set-up (the checkouts are not part of this repository):
    git clone https://github.com/facebookresearch/DiT
    git clone https://github.com/willisma/SiT
    git clone https://github.com/hustvl/LightningDiT
    git clone https://github.com/CVL-UESTC/Internal-Guidance
    pip install torch torchvision timm einops fairscale scipy torchdiffeq numpy
    python3 scripts/make-official-fixtures.py --dit-repo DiT --sit-repo SiT \
        --lightningdit-repo LightningDiT --ig-repo Internal-Guidance

Nothing is stubbed. timm provides PatchEmbed/Attention/Mlp; LightningDiT's models/rmsnorm.py
imports fairscale (used only by its unused Llama classes), models/pos_embed.py einops, and its
transport scipy and torchdiffeq. LightningDiT decorates its forwards with @torch.compile; the
script sets TORCHDYNAMO_DISABLE=1 so that they run eagerly on the CPU (same operations, no
compiled kernels). The fixtures in the repository were made from the commits listed in each golden
file's `official` metadata, with torch 2.15 and timm 1.0.31 on the CPU.
"""
import argparse
import importlib
import json
import math
import os
import struct
import subprocess
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import torch  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "import")
# Tiny sizes shared by every model (LightningDiT uses patch 1, as its official models do); head
# dim 8, as RoPE needs a multiple of 4; each file stays under 300 kB.
HIDDEN, DEPTH, HEADS, CLASSES, CHANNELS, SIZE, BATCH = 24, 4, 3, 10, 4, 8, 3
# Top-level module names the official repositories share ("models", "diffusion", …).
SHARED_NAMES = ("models", "diffusion", "transport", "loss")


def load(root, *names):
    """Imports `names` from the checkout folder `root`, forgetting any earlier same-named modules."""
    for key in [k for k in sys.modules if k.split(".")[0] in SHARED_NAMES]:
        del sys.modules[key]
    sys.path.insert(0, root)
    try:
        return [importlib.import_module(name) for name in names]
    finally:
        sys.path.remove(root)


def commit(repo):
    """The checkout's commit, for the golden file's metadata."""
    try:
        return subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def randomize(model, seed):
    """Re-draws every trainable parameter: weights N(0, 1/fan_in), biases N(0, 0.1²), the label
    table N(0, 1), norm weights 1 + N(0, 0.1²). The frozen sin-cos `pos_embed` and the RoPE
    buffers keep their official values, as in official checkpoints."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            noise = torch.randn(p.shape, generator=gen)
            parts = name.split(".")
            if len(parts) > 1 and "norm" in parts[-2]:
                p.copy_(1 + 0.1 * noise)
            elif "embedding_table" in name:
                p.copy_(noise)
            elif p.dim() == 1:
                p.copy_(0.1 * noise)
            else:
                p.copy_(noise / math.sqrt(p[0].numel()))


def final_output(model, run):
    """Runs `run()` and returns what the official `unpatchify` makes of the final layer's tokens:
    the full output, before SiT/LightningDiT's learn_sigma chunk."""
    tokens = []
    hook = model.final_layer.register_forward_hook(lambda _m, _i, out: tokens.append(out))
    try:
        result = run()
    finally:
        hook.remove()
    return result, model.unpatchify(tokens[-1]).detach()


def mean_flat(x):
    return x.flatten(1).mean(1)


def inputs(seed):
    """Data x0 and labels (y[0] the null label), drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(BATCH, CHANNELS, SIZE, SIZE, generator=gen)
    y = torch.cat([torch.tensor([CLASSES]), torch.randint(0, CLASSES, (BATCH - 1,), generator=gen)])
    return x0, y


def replayed_draws(seed, x0):
    """The noise and t a flow loss draws after `torch.manual_seed(seed)` (randn_like, then rand)."""
    torch.manual_seed(seed)
    eps = torch.randn_like(x0)
    return eps, torch.rand(x0.shape[0])


def make_dit(repo, seed):
    models, diffusion = load(repo, "models", "diffusion")
    model = models.DiT(input_size=SIZE, patch_size=2, in_channels=CHANNELS, hidden_size=HIDDEN, depth=DEPTH,
                       num_heads=HEADS, num_classes=CLASSES, learn_sigma=True).eval()
    randomize(model, seed)
    x0, y = inputs(seed + 1)
    gen = torch.Generator().manual_seed(seed + 2)
    eps = torch.randn(x0.shape, generator=gen)
    t = torch.tensor([0, 421, 999])
    ddpm = diffusion.create_diffusion(timestep_respacing="")  # 1000 linear steps, learned sigma
    xt = ddpm.q_sample(x0, t, noise=eps)
    out = model(xt, t, y)
    terms = ddpm.training_losses(model, x0, t, dict(y=y), noise=eps)
    # Loom's ddpm_eps loss is the ε-MSE alone (the "mse" term; the vb term is an option).
    tensors = dict(x0=x0, eps=eps, t=t.float(), y=y, xt=xt, out_final=out, loss=terms["mse"].mean())
    return model, tensors, dict(objective="ddpm_eps", learn_sigma=True, patch=2, ig_layer=None,
                                lightning=False, cosine_loss=False)


def make_sit(repo, seed):
    models, transport = load(repo, "models", "transport")
    model = models.SiT(input_size=SIZE, patch_size=2, in_channels=CHANNELS, hidden_size=HIDDEN, depth=DEPTH,
                       num_heads=HEADS, num_classes=CLASSES, learn_sigma=True).eval()
    randomize(model, seed)
    x0, y = inputs(seed + 1)
    flow = transport.create_transport("Linear", "velocity")
    torch.manual_seed(seed + 2)
    terms, full = final_output(model, lambda: flow.training_losses(model, x0, dict(y=y)))
    eps, t = replayed_draws(seed + 2, x0)
    _, xt, ut = flow.path_sampler.plan(t, eps, x0)
    assert torch.equal(full[:, :CHANNELS], terms["pred"]), "the forward is the first half of the full output"
    loss = terms["loss"].mean()
    tensors = dict(x0=x0, eps=eps, t=t, y=y, xt=xt, target=ut, out_final=full, loss_final=loss, loss=loss)
    return model, tensors, dict(objective="flow_sit", learn_sigma=True, patch=2, ig_layer=None,
                                lightning=False, cosine_loss=False)


def make_sit_ig(repo, seed, ig_layer=2):
    sit, ig_loss = load(os.path.join(repo, "SiT"), "models.sit", "loss")
    model = sit.SiT(path_type="linear", input_size=SIZE, patch_size=2, in_channels=CHANNELS, hidden_size=HIDDEN,
                    decoder_hidden_size=HIDDEN, depth=DEPTH, encoder_depth=ig_layer, num_heads=HEADS,
                    num_classes=CLASSES, qk_norm=False).eval()
    randomize(model, seed)
    x0, y = inputs(seed + 1)
    loss_fn = ig_loss.IGLoss(prediction="v", path_type="linear", weighting="uniform")
    torch.manual_seed(seed + 2)
    gen_loss, proj_loss = loss_fn(model, x0, y)
    # IGLoss draws t first (shape N×1×1×1), then the noise.
    torch.manual_seed(seed + 2)
    t = torch.rand(BATCH, 1, 1, 1)
    eps = torch.randn_like(x0)
    xt, target = (1 - t) * x0 + t * eps, eps - x0
    out, inter, _ = model(xt, t.flatten(), y)
    assert torch.allclose(mean_flat((out - target) ** 2), gen_loss, rtol=1e-6, atol=0)
    loss_final, loss_inter = gen_loss.mean(), proj_loss.mean()
    tensors = dict(x0=x0, eps=eps, t=t.flatten(), y=y, xt=xt, target=target, out_final=out, out_inter=inter,
                   loss_final=loss_final, loss_inter=loss_inter, loss=loss_final + 0.5 * loss_inter)  # train.py
    return model, tensors, dict(objective="flow_repa", learn_sigma=False, patch=2, ig_layer=ig_layer,
                                lightning=False, cosine_loss=False)


def make_lightningdit(root, seed, ig_layer=None):
    lightningdit, transport = load(root, "models.lightningdit", "transport")
    extra = {} if ig_layer is None else dict(encoder_depth=ig_layer)
    model = lightningdit.LightningDiT(input_size=SIZE, patch_size=1, in_channels=CHANNELS, hidden_size=HIDDEN,
                                      depth=DEPTH, num_heads=HEADS, num_classes=CLASSES, use_qknorm=False,
                                      use_swiglu=True, use_rope=True, use_rmsnorm=True, wo_shift=False,
                                      **extra).eval()
    randomize(model, seed)
    x0, y = inputs(seed + 1)
    # The settings of configs/lightningdit_xl_vavae_f16d32.yaml: linear velocity, cosine loss, uniform t.
    flow = transport.create_transport("Linear", "velocity", None, None, None, use_cosine_loss=True,
                                      use_lognorm=False)
    torch.manual_seed(seed + 2)
    terms = flow.training_losses(model, x0, dict(y=y))
    eps, t = replayed_draws(seed + 2, x0)
    _, xt, ut = flow.path_sampler.plan(t, eps, x0)
    outputs = model(xt, t, y)
    out, inter = outputs if ig_layer is not None else (outputs, None)
    assert torch.equal(out, terms["pred"])
    loss_final = mean_flat((out - ut) ** 2).mean()
    loss = terms["loss"].mean() + terms["cos_loss"].mean()  # train.py
    tensors = dict(x0=x0, eps=eps, t=t, y=y, xt=xt, target=ut, out_final=out, loss_final=loss_final, loss=loss)
    if inter is not None:
        tensors.update(out_inter=inter, loss_inter=mean_flat((inter - ut) ** 2).mean())
    return model, tensors, dict(objective="flow_sit", learn_sigma=False, patch=1, ig_layer=ig_layer,
                                lightning=True, cosine_loss=True)


def save_safetensors(tensors, metadata, path):
    """The safetensors layout (u64 header size, JSON header, data), keys sorted, so that the same
    values always give the same bytes."""
    header, chunks, offset = {"__metadata__": metadata}, [], 0
    for name in sorted(tensors):
        tensor = tensors[name].detach().contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[tensor.dtype]
        data = tensor.numpy().tobytes()
        header[name] = {"dtype": dtype, "shape": list(tensor.shape), "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


def write(name, model, tensors, settings, source):
    """Saves the state dict and the golden file of one model."""
    state = model.state_dict()
    torch.save(state, os.path.join(OUT, f"official_{name}.pt"))
    config = dict(num_classes=CLASSES, input_size=SIZE, in_channels=CHANNELS,
                  out_channels=2 * CHANNELS if settings["learn_sigma"] else CHANNELS, hidden=HIDDEN, depth=DEPTH,
                  heads=HEADS, ig_lambda=0.5, **settings)
    golden = {"param." + key: value for key, value in state.items()}
    golden.update(tensors)
    path = os.path.join(OUT, f"official_{name}.golden.safetensors")
    save_safetensors(golden, {"config": json.dumps(config, sort_keys=True), "official": source}, path)
    sizes = [os.path.getsize(os.path.join(OUT, f)) // 1024 for f in (f"official_{name}.pt", path)]
    print(f"official_{name}: {len(state)} tensors, .pt {sizes[0]} KiB, golden {sizes[1]} KiB, "
          f"loss {float(tensors['loss'].detach()):.6f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dit-repo", help="checkout of facebookresearch/DiT")
    parser.add_argument("--sit-repo", help="checkout of willisma/SiT")
    parser.add_argument("--lightningdit-repo", help="checkout of hustvl/LightningDiT")
    parser.add_argument("--ig-repo", help="checkout of CVL-UESTC/Internal-Guidance")
    args = parser.parse_args()
    if not any([args.dit_repo, args.sit_repo, args.lightningdit_repo, args.ig_repo]):
        parser.error("name at least one checkout")
    os.makedirs(OUT, exist_ok=True)
    jobs = []
    if args.dit_repo:
        jobs.append(("dit", args.dit_repo, "facebookresearch/DiT models.py, diffusion/", lambda r: make_dit(r, 100)))
    if args.sit_repo:
        jobs.append(("sit", args.sit_repo, "willisma/SiT models.py, transport/", lambda r: make_sit(r, 200)))
    if args.ig_repo:
        jobs.append(("sit_ig", args.ig_repo, "CVL-UESTC/Internal-Guidance SiT/models/sit.py, SiT/loss.py",
                     lambda r: make_sit_ig(r, 300)))
    if args.lightningdit_repo:
        jobs.append(("lightningdit", args.lightningdit_repo, "hustvl/LightningDiT models/, transport/",
                     lambda r: make_lightningdit(r, 400)))
    if args.ig_repo:
        jobs.append(("lightningdit_ig", args.ig_repo,
                     "CVL-UESTC/Internal-Guidance LightningDiT/models/, LightningDiT/transport/",
                     lambda r: make_lightningdit(os.path.join(r, "LightningDiT"), 500, ig_layer=1)))
    for name, repo, what, make in jobs:
        model, tensors, settings = make(os.path.abspath(repo))
        write(name, model, tensors, settings, f"{what} @ {commit(repo)}")


if __name__ == "__main__":
    main()
