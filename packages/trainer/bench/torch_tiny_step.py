"""PyTorch anchor for `pnpm bench` in @vrepa/trainer: the tiny preset's training step, float32 CPU.

A faithful small CogVideoX-style model written here (our own code following diffusers'
CogVideoXTransformer3DModel, 2B style), NOT the exact diffusers class (diffusers is not installed):
  patch embedding (text Linear + per-frame Conv2d patch 2, text tokens first), a fixed 3-D sincos position
  table on the vision tokens, sinusoidal timestep → TimestepEmbedding (Linear·SiLU·Linear), `layers` blocks
  of CogVideoXBlock (LayerNormZero AdaLN modulation of text and vision, joint attention over text+vision with
  LayerNorm on q and k (eps 1e-6), gated residuals, GELU-tanh feed-forward ×4), norm_final, AdaLayerNorm
  norm_out, proj_out, unpatchify.
The step, as the official VideoREPA trainer: t ~ U{0..999}, x_t = add_noise (CogVideoX DDIM schedule:
scaled-linear betas 0.00085..0.012, snr_shift_scale 3), v-prediction; x̂₀ = √ᾱ·x_t − √(1−ᾱ)·v̂;
L_diff = mean_b mean(w_t (x̂₀ − x₀)²), w_t = 1/(1−ᾱ_t); alignment: the vision hidden states after block
`align_layer` → projector (Linear·SiLU·Linear·SiLU·Linear) → trilinear resize to the teacher grid → TRD
(the official per-frame form, margin 0.1); L = L_diff + λ·L_align; backward; clip_grad_norm_(1.0); AdamW.
With --drop-first-frame the projected tokens lose latent frame 0 before the trilinear resize (the official
trainer and our matchGrids: VideoMAE-type teachers see frames 1..F-1; at the toy reproduction's size, 5 latent
frames → 4 → ×2 = the teacher's 8 in time, space already on the teacher's 6×9, i.e. grid match
'teacher-interpolated'); @vrepa/repro's bench/toy-step.ts passes it. Without it all latent frames are resized
(the tiny preset's anchor, as before).

Prints one JSON line per λ: {"lambda", "ms_step" (mean), "ms_each" (every timed step), "cpu_ms_each" (process CPU time of each), "steps_per_s", "ms_fwd_bwd", "ms_opt", "steps",
"params", "threads", "torch"}, and with --count-ops "ops_per_step"
(aten ops of one more, untimed step; the backward's too).

usage: python torch_tiny_step.py --heads 2 --head-dim 16 --layers 2 --in-channels 4 --text-dim 12
         --time-dim 16 --latent 3 12 12 --text-len 5 --batch 2 --align-layer 1 --proj-dim 16 --teacher-dim 8
         --teacher-grid 4 2 2 --lambdas 0 0.5 --steps 12
"""
import argparse
import contextlib
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as Fn
from torch.utils._python_dispatch import TorchDispatchMode


class OpCounter(TorchDispatchMode):
    """Counts the aten ops one step dispatches (forward, autograd's backward, clipping, AdamW): --count-ops."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


def sincos_1d(dim, pos):
    omega = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0))
    out = pos.reshape(-1).double()[:, None] * omega[None]
    return torch.cat([torch.sin(out), torch.cos(out)], dim=1)


def sincos_3d(dim, frames, h, w, spatial_scale=1.875, temporal_scale=1.0):
    """Like diffusers get_3d_sincos_pos_embed: 3/4 of the channels spatial (h, w halves), 1/4 temporal."""
    ds, dt = dim // 4 * 3, dim // 4
    gy, gx = torch.meshgrid(torch.arange(h) / spatial_scale, torch.arange(w) / spatial_scale, indexing="ij")
    spatial = torch.cat([sincos_1d(ds // 2, gx), sincos_1d(ds // 2, gy)], dim=1)  # [h*w, ds]
    temporal = sincos_1d(dt, torch.arange(frames) / temporal_scale)  # [F, dt]
    table = torch.cat([temporal[:, None].expand(-1, h * w, -1), spatial[None].expand(frames, -1, -1)], dim=-1)
    return table.reshape(frames * h * w, dim).float()


def timestep_features(t, dim):
    """diffusers Timesteps(dim, flip_sin_to_cos=True, freq_shift=0)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


class LayerNormZero(nn.Module):
    def __init__(self, cond, dim, eps):
        super().__init__()
        self.linear = nn.Linear(cond, 6 * dim)
        self.norm = nn.LayerNorm(dim, eps=eps)

    def forward(self, h, enc, temb):
        shift, scale, gate, eshift, escale, egate = self.linear(Fn.silu(temb))[:, None].chunk(6, dim=-1)
        return self.norm(h) * (1 + scale) + shift, self.norm(enc) * (1 + escale) + eshift, gate, egate


class Block(nn.Module):
    def __init__(self, dim, heads, head_dim, temb, eps):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.norm1 = LayerNormZero(temb, dim, eps)
        self.to_q = nn.Linear(dim, heads * head_dim)
        self.to_k = nn.Linear(dim, heads * head_dim)
        self.to_v = nn.Linear(dim, heads * head_dim)
        self.norm_q = nn.LayerNorm(head_dim, eps=1e-6)
        self.norm_k = nn.LayerNorm(head_dim, eps=1e-6)
        self.to_out = nn.Linear(heads * head_dim, dim)
        self.norm2 = LayerNormZero(temb, dim, eps)
        self.ff = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(approximate="tanh"), nn.Linear(4 * dim, dim))

    def forward(self, h, enc, temb):
        L = enc.shape[1]
        nh, ne, g, eg = self.norm1(h, enc, temb)
        x = torch.cat([ne, nh], dim=1)
        B, S, _ = x.shape
        split = lambda t: t.reshape(B, S, self.heads, self.head_dim).transpose(1, 2)
        q, k, v = self.norm_q(split(self.to_q(x))), self.norm_k(split(self.to_k(x))), split(self.to_v(x))
        o = self.to_out(Fn.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, S, -1))
        h = h + g * o[:, L:]
        enc = enc + eg * o[:, :L]
        nh, ne, g, eg = self.norm2(h, enc, temb)
        f = self.ff(torch.cat([ne, nh], dim=1))
        return h + g * f[:, L:], enc + eg * f[:, :L]


class TinyCogVideoX(nn.Module):
    def __init__(self, a):
        super().__init__()
        D = a.heads * a.head_dim
        self.D, self.p, self.cout = D, a.patch, a.in_channels
        self.text_proj = nn.Linear(a.text_dim, D)
        self.proj = nn.Conv2d(a.in_channels, D, kernel_size=a.patch, stride=a.patch)
        F, H, W = a.latent
        self.register_buffer("pos", sincos_3d(D, F, H // a.patch, W // a.patch))
        self.time_lin1 = nn.Linear(D, a.time_dim)
        self.time_lin2 = nn.Linear(a.time_dim, a.time_dim)
        self.blocks = nn.ModuleList([Block(D, a.heads, a.head_dim, a.time_dim, 1e-5) for _ in range(a.layers)])
        self.norm_final = nn.LayerNorm(D, eps=1e-5)
        self.norm_out_linear = nn.Linear(a.time_dim, 2 * D)
        self.norm_out = nn.LayerNorm(D, eps=1e-5)
        self.proj_out = nn.Linear(D, a.patch * a.patch * a.in_channels)

    def forward(self, x, text, t, align_layer):
        """x [B, F, C, H, W] → (v̂ [B, F, C, H, W], vision hidden after block align_layer [B, F*h*w, D])."""
        B, F, C, H, W = x.shape
        p = self.p
        h = self.proj(x.reshape(B * F, C, H, W)).flatten(2).transpose(1, 2).reshape(B, -1, self.D) + self.pos
        enc = self.text_proj(text)
        temb = self.time_lin2(Fn.silu(self.time_lin1(timestep_features(t, self.D))))
        aligned = None
        for i, blk in enumerate(self.blocks):
            h, enc = blk(h, enc, temb)
            if i + 1 == align_layer:
                aligned = h
        L = enc.shape[1]
        h = self.norm_final(torch.cat([enc, h], dim=1))[:, L:]
        shift, scale = self.norm_out_linear(Fn.silu(temb))[:, None].chunk(2, dim=-1)
        h = self.proj_out(self.norm_out(h) * (1 + scale) + shift)
        out = h.reshape(B, F, H // p, W // p, C, p, p).permute(0, 1, 4, 2, 5, 3, 6).reshape(B, F, C, H, W)
        return out, aligned


def trd(a, t, F, hw, margin):
    """The official TRD (as bench/torch_trd.py in @vrepa/relations)."""
    B = a.shape[0]
    a = Fn.normalize(a.reshape(B, F, hw, -1), dim=-1)
    t = Fn.normalize(t.reshape(B, F, hw, -1), dim=-1)
    rows_a, all_a = a.flatten(0, 1), a.flatten(1, 2).unsqueeze(1).expand(-1, F, -1, -1).flatten(0, 1)
    rows_t, all_t = t.flatten(0, 1), t.flatten(1, 2).unsqueeze(1).expand(-1, F, -1, -1).flatten(0, 1)
    s_s = torch.bmm(rows_a, all_a.transpose(1, 2))
    s_t = torch.bmm(rows_t, all_t.transpose(1, 2))
    return Fn.relu((s_s - s_t).abs() - margin).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--in-channels", type=int, default=4)
    ap.add_argument("--text-dim", type=int, default=12)
    ap.add_argument("--time-dim", type=int, default=16)
    ap.add_argument("--patch", type=int, default=2)
    ap.add_argument("--latent", type=int, nargs=3, default=[3, 12, 12], help="frames height width")
    ap.add_argument("--text-len", type=int, default=5)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--align-layer", type=int, default=1)
    ap.add_argument("--proj-dim", type=int, default=16)
    ap.add_argument("--teacher-dim", type=int, default=8)
    ap.add_argument("--teacher-grid", type=int, nargs=3, default=[4, 2, 2])
    ap.add_argument("--margin", type=float, default=0.1)
    ap.add_argument("--lambdas", type=float, nargs="+", default=[0.0, 0.5])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--count-ops", action="store_true", help="one more (untimed) step under a dispatch counter: ops_per_step")
    ap.add_argument("--drop-first-frame", action="store_true", help="drop latent frame 0 before the resize to the teacher grid (official)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    betas = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    ac = torch.cumprod(1 - betas, 0)
    ac = (ac / (3.0 + (1 - 3.0) * ac)).float()  # CogVideoX snr_shift_scale = 3
    F, H, W = a.latent
    TF, TH, TW = a.teacher_grid
    for lam in a.lambdas:
        torch.manual_seed(0)
        model = TinyCogVideoX(a)
        D = model.D
        projector = nn.Sequential(nn.Linear(D, a.proj_dim), nn.SiLU(), nn.Linear(a.proj_dim, a.proj_dim), nn.SiLU(), nn.Linear(a.proj_dim, a.teacher_dim))
        params = list(model.parameters()) + (list(projector.parameters()) if lam > 0 else [])
        opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4)
        data = [(torch.randn(a.batch, F, a.in_channels, H, W), torch.randn(a.batch, a.text_len, a.text_dim), torch.randn(a.batch, TF * TH * TW, a.teacher_dim)) for _ in range(4)]
        fwd_bwd, optim, walls, cpus = [], [], [], []
        n_ops = None
        for step in range(a.warmup + a.steps + (1 if a.count_ops else 0)):
            counting = step == a.warmup + a.steps
            with (OpCounter() if counting else contextlib.nullcontext()) as counter:
                x0, text, teacher = data[step % len(data)]
                t0 = time.perf_counter()
                c0 = time.process_time()
                t = torch.randint(0, 1000, (a.batch,))
                noise = torch.randn_like(x0)
                s = ac[t].reshape(-1, 1, 1, 1, 1)
                xt = s.sqrt() * x0 + (1 - s).sqrt() * noise
                v, aligned = model(xt, text, t, a.align_layer if lam > 0 else 0)
                x0_hat = s.sqrt() * xt - (1 - s).sqrt() * v
                w = (1 / (1 - ac[t])).reshape(-1, 1)
                loss = (w * ((x0_hat - x0) ** 2).reshape(a.batch, -1)).mean(1).mean()
                if lam > 0:
                    z = projector(aligned)  # [B, F*h*w, C]
                    h, ww = H // a.patch, W // a.patch
                    z = z.reshape(a.batch, F, h, ww, -1).permute(0, 4, 1, 2, 3)
                    if a.drop_first_frame:
                        z = z[:, :, 1:]
                    z = Fn.interpolate(z, size=(TF, TH, TW), mode="trilinear", align_corners=False)
                    z = z.permute(0, 2, 3, 4, 1).reshape(a.batch, TF * TH * TW, -1)
                    loss = loss + lam * trd(z, teacher, TF, TH * TW, a.margin)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                _ = loss.item()
                t1 = time.perf_counter()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                opt.step()
                t2 = time.perf_counter()
                c2 = time.process_time()
            if counting:
                n_ops = counter.count
                continue
            if step >= a.warmup:
                cpus.append(c2 - c0)
                fwd_bwd.append(t1 - t0)
                optim.append(t2 - t1)
                walls.append(t2 - t0)
        ms = 1e3 * sum(walls) / len(walls)
        print(json.dumps({"lambda": lam, "ms_step": ms, "ms_each": [round(1e3 * w, 2) for w in walls], "cpu_ms_each": [round(1e3 * c, 3) for c in cpus], "steps_per_s": 1e3 / ms, "ms_fwd_bwd": 1e3 * sum(fwd_bwd) / len(fwd_bwd),
                          "ms_opt": 1e3 * sum(optim) / len(optim), "steps": len(walls), "params": sum(p.numel() for p in params),
                          "threads": torch.get_num_threads(), "torch": torch.__version__, **({"ops_per_step": n_ops} if n_ops is not None else {})}), flush=True)


if __name__ == "__main__":
    main()
