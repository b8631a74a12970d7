"""PyTorch anchor for bench/pretrain.ts: one VideoMAE pre-training step of the OFFICIAL model.

The official code is not part of this repository: VREPA_VIDEOMAEV2_DIR must name a checkout of
OpenGVLab/VideoMAEv2 (the folder holding models/modeling_pretrain.py); it is imported from there. When timm is
not importable, the few timm helpers the official files import (drop_path, to_2tuple, trunc_normal_,
register_model) are provided by small stand-ins below (plain PyTorch; drop path is never active here).

Times, with batch B on a clip 16x112x112 (ViT-S encoder, decoder 192 wide, depth 4, tube mask 0.9):
  step      forward + masked-MSE loss on normalised targets + backward + torch.optim.AdamW step
  enc_vis   encoder forward + backward on the visible tokens only (what MAE does)
  enc_all   encoder forward + backward on every token
Prints one JSON line. Usage: python torch_pretrain.py --batch 2 --runs 3 --threads 2
"""
import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
import types
from functools import partial


def stub_timm():
    import torch
    import torch.nn as nn

    def drop_path(x, drop_prob=0.0, training=False):
        if drop_prob == 0.0 or not training:
            return x
        keep = 1 - drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def to_2tuple(x):
        return tuple(x) if isinstance(x, (list, tuple)) else (x, x)

    def register_model(fn):
        return fn

    layers = types.ModuleType('timm.models.layers')
    layers.drop_path = drop_path
    layers.to_2tuple = to_2tuple
    layers.trunc_normal_ = lambda t, mean=0.0, std=1.0, a=-2.0, b=2.0: nn.init.trunc_normal_(t, mean, std, a, b)
    registry = types.ModuleType('timm.models.registry')
    registry.register_model = register_model
    timm = types.ModuleType('timm')
    models = types.ModuleType('timm.models')
    timm.models = models
    models.layers = layers
    models.registry = registry
    sys.modules.update({'timm': timm, 'timm.models': models, 'timm.models.layers': layers, 'timm.models.registry': registry})


def load_official(repo):
    try:
        from timm.models.layers import drop_path, to_2tuple, trunc_normal_  # noqa: F401
        from timm.models.registry import register_model  # noqa: F401
    except Exception:
        stub_timm()
    pkg = types.ModuleType('vmae_models')
    pkg.__path__ = [os.path.join(repo, 'models')]
    sys.modules['vmae_models'] = pkg
    for name in ['modeling_finetune', 'modeling_pretrain']:
        spec = importlib.util.spec_from_file_location(f'vmae_models.{name}', os.path.join(repo, 'models', f'{name}.py'))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[f'vmae_models.{name}'] = mod
        spec.loader.exec_module(mod)
    return sys.modules['vmae_models.modeling_pretrain']


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--batch', type=int, default=2)
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--frames', type=int, default=16)
    ap.add_argument('--size', type=int, default=112)
    ap.add_argument('--ratio', type=float, default=0.9)
    a = ap.parse_args()
    repo = os.environ.get('VREPA_VIDEOMAEV2_DIR')
    if not repo or not os.path.exists(os.path.join(repo, 'models', 'modeling_pretrain.py')):
        print('VREPA_VIDEOMAEV2_DIR must name a checkout of OpenGVLab/VideoMAEv2', file=sys.stderr)
        sys.exit(2)
    import torch
    import torch.nn as nn
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    mp = load_official(repo)
    # the arguments of the official pretrain_videomae_small_patch16_224 factory, at img_size 112 and decoder depth 4
    model = mp.PretrainVisionTransformer(
        img_size=a.size, patch_size=16, encoder_embed_dim=384, encoder_depth=12, encoder_num_heads=6, encoder_num_classes=0,
        decoder_num_classes=1536, decoder_embed_dim=192, decoder_num_heads=3, decoder_depth=4, mlp_ratio=4, qkv_bias=True,
        norm_layer=partial(nn.LayerNorm, eps=1e-6), all_frames=a.frames, tubelet_size=2)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    B, T, H = a.batch, a.frames, a.size
    g = (T // 2, H // 16, H // 16)
    n = g[0] * g[1] * g[2]
    per = g[1] * g[2]
    masked = int(a.ratio * per)
    spatial = torch.zeros(per, dtype=torch.bool)
    spatial[torch.randperm(per)[:masked]] = True
    mask = spatial.repeat(g[0]).unsqueeze(0).expand(B, n).contiguous()
    x = torch.randn(B, 3, T, H, H)

    def targets():
        # official engine_for_pretraining: un-normalise, tubelets, per-token-and-channel normalisation (unbiased std)
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1, 1)
        img = x * std + mean
        sq = img.view(B, 3, T // 2, 2, H // 16, 16, H // 16, 16).permute(0, 2, 4, 6, 3, 5, 7, 1).reshape(B, n, 2 * 16 * 16, 3)
        norm = (sq - sq.mean(dim=-2, keepdim=True)) / (sq.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)
        return norm.reshape(B, n, -1)[mask].reshape(B, -1, 1536)

    def step():
        with torch.no_grad():
            labels = targets()
        out = model(x, mask)
        loss = nn.functional.mse_loss(out, labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    none = torch.zeros(B, n, dtype=torch.bool)

    def enc(m):
        model.zero_grad()
        model.encoder(x, m).mean().backward()

    def timed(fn):
        fn()
        ts = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return statistics.median(ts)

    res = {'torch': torch.__version__, 'threads': torch.get_num_threads(), 'batch': B, 'tokens': n, 'visible': n - int(mask[0].sum()),
           'step': timed(step), 'enc_vis': timed(lambda: enc(mask)), 'enc_all': timed(lambda: enc(none))}
    print(json.dumps(res))


if __name__ == '__main__':
    main()
