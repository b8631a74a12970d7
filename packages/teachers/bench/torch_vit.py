"""PyTorch anchor for `pnpm bench` in @vrepa/teachers: a plain ViT with the VideoMAEv2 layout, forward only.

Our own code following the official VideoMAEv2 `VisionTransformer` (models/modeling_finetune.py):
Conv3d patch embedding (tubelet 2, patch 16), a fixed sinusoid position table added to the tokens, then
`depth` blocks of x + attn(norm1(x)), x + mlp(norm2(x)) with LayerNorm eps 1e-6, a qkv Linear without bias
plus q_bias / v_bias (the k bias is zero), attention written out as the official code does it
(q·kᵀ·scale, softmax, ·v: the whole [B, heads, N, N] score tensor), and a GELU MLP of ratio 4.
Random weights, float32, torch.no_grad, `--threads` intra-op threads (2 = the machine's cores).

Prints one JSON line per model:
  {"model", "dim", "depth", "heads", "tokens", "seconds" (the best of the timed runs, as the tfjs rows), "runs", "gflop",
   "threads", "torch", "attn"}
`--dump FILE` instead writes a small model's weights (official keys), an input and its output for the
cross-check in bench/run.ts (frames × height × height input, `--dump-depth` blocks).
`--attn sdpa` uses F.scaled_dot_product_attention instead (not the official form; PyTorch's fused kernel).

usage: python torch_vit.py --models s b --frames 48 --height 160 --width 240 --runs 2
"""
import argparse
import json
import struct
import time

import torch
import torch.nn as nn
import torch.nn.functional as Fn

ARCH = {  # name: (embed dim, depth, heads), the official vit_{small,base,large}_patch16_224 factories
    "s": (384, 12, 6),
    "b": (768, 12, 12),
    "l": (1024, 24, 16),
}


def sinusoid_table(n, d):
    """The official get_sinusoid_encoding_table: angle(pos, j) = pos / 10000^(2*(j//2)/d); sin on even j, cos on odd."""
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(d, dtype=torch.float64)[None, :]
    angle = pos / torch.pow(10000.0, 2 * torch.div(j, 2, rounding_mode="floor") / d)
    table = torch.where(j.long() % 2 == 0, torch.sin(angle), torch.cos(angle))
    return table.float()[None]  # [1, n, d]


class Attention(nn.Module):
    def __init__(self, dim, heads, sdpa):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.q_bias = nn.Parameter(torch.randn(dim) * 0.02)
        self.v_bias = nn.Parameter(torch.randn(dim) * 0.02)
        self.proj = nn.Linear(dim, dim)
        self.sdpa = sdpa

    def forward(self, x):
        B, N, C = x.shape
        bias = torch.cat([self.q_bias, torch.zeros_like(self.v_bias), self.v_bias])
        qkv = Fn.linear(x, self.qkv.weight, bias).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if self.sdpa:
            o = Fn.scaled_dot_product_attention(q, k, v)
        else:
            attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
            o = attn @ v
        return self.proj(o.transpose(1, 2).reshape(B, N, C))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(Fn.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads, sdpa):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads, sdpa)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, 4 * dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, dim, patch, tubelet):
        super().__init__()
        self.proj = nn.Conv3d(3, dim, kernel_size=(tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x):
        return self.proj(x)


class VideoViT(nn.Module):
    def __init__(self, dim, depth, heads, patch=16, tubelet=2, sdpa=False):
        super().__init__()
        self.patch_embed = PatchEmbed(dim, patch, tubelet)
        self.blocks = nn.ModuleList([Block(dim, heads, sdpa) for _ in range(depth)])

    def forward(self, x):  # x: [B, 3, T, H, W] → [B, T/2 * H/16 * W/16, dim], frame-major
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = x + sinusoid_table(x.shape[1], x.shape[2]).to(x.dtype)
        for blk in self.blocks:
            x = blk(x)
        return x


def vit_flops(dim, depth, n, patch=16, tubelet=2, chans=3, mlp=4):
    """Matmul FLOPs, the same analytic count as @vrepa/teachers' vitForwardFlops."""
    hidden = int(dim * mlp)
    per_block = 2 * n * dim * 3 * dim + 2 * n * n * dim * 2 + 2 * n * dim * dim + 2 * n * dim * hidden * 2
    return 2 * n * tubelet * patch * patch * chans * dim + depth * per_block


def write_safetensors(path, tensors):
    """The safetensors layout (8-byte little-endian header length, JSON header, raw little-endian F32 data)."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().float().numpy().astype("<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def dump(path, name, depth, frames, size):
    """Cross-check data: a `depth`-block model with random weights (non-trivial biases and norms) under the
    official state-dict keys, plus `input` [1, T, H, W, 3] (channels-last, as @vrepa/teachers takes it) and
    `output` [1, N, D], in one safetensors file."""
    dim, _, heads = ARCH[name]
    torch.manual_seed(1)
    model = VideoViT(dim, depth, heads).eval()
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith("norm1.weight") or n.endswith("norm2.weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.05 * torch.randn_like(p))
        x = torch.rand(1, 3, frames, size, size) * 2 - 1
        out = model(x)
    sd = {k: v for k, v in model.state_dict().items()}
    sd["input"] = x.permute(0, 2, 3, 4, 1)
    sd["output"] = out
    write_safetensors(path, sd)
    print(json.dumps({"dump": path, "model": name, "depth": depth, "tokens": out.shape[1]}), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", help="write cross-check weights + input + output to this .safetensors and exit")
    ap.add_argument("--dump-depth", type=int, default=2)
    ap.add_argument("--models", nargs="+", default=["s", "b"], choices=sorted(ARCH))
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--height", type=int, default=160)
    ap.add_argument("--width", type=int, default=240)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", choices=["explicit", "sdpa"], default="explicit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.dump:
        return dump(args.dump, args.models[0], args.dump_depth, args.frames, args.height)
    torch.manual_seed(0)
    x = torch.rand(1, 3, args.frames, args.height, args.width) * 4 - 2
    n = (args.frames // 2) * (args.height // 16) * (args.width // 16)
    for name in args.models:
        dim, depth, heads = ARCH[name]
        model = VideoViT(dim, depth, heads, sdpa=args.attn == "sdpa").eval()
        times = []
        with torch.no_grad():
            for i in range(args.runs + 1):  # the first run warms up (allocator, kernels)
                t0 = time.perf_counter()
                out = model(x)
                _ = out[0, 0, 0].item()
                if i > 0:
                    times.append(time.perf_counter() - t0)
        print(json.dumps({"model": name, "dim": dim, "depth": depth, "heads": heads, "tokens": n,
                          "seconds": times[0], "runs": len(times),
                          "gflop": vit_flops(dim, depth, n) / 1e9, "threads": torch.get_num_threads(),
                          "torch": torch.__version__, "attn": args.attn}), flush=True)
        del model, out


if __name__ == "__main__":
    main()
