"""PyTorch anchor for `pnpm bench:ops` in @vrepa/trainer: CPU µs per call (process time, minimum of 5 rounds) of a few primitives, float32 CPU,
and one AdamW step over a given list of parameter shapes (torch.optim.AdamW default = for-loop over
tensors, foreach=True and fused=True).

usage: python torch_primitives.py --threads 2 --reps 2000 --shapes '[[16, 4, 2, 2], [16], ...]'
Prints one JSON object: {"add_8x16": µs, ..., "adamw_default": µs, "adamw_foreach": µs, "adamw_fused": µs, "torch": version}.
"""
import argparse
import json
import time

import torch


def per_call(fn, reps, rounds=5):
    """Minimum over rounds of this process's CPU time per call (all threads): robust to other jobs' load."""
    for _ in range(min(200, reps)):
        fn()
    times = []
    for _ in range(rounds):
        t0 = time.process_time()
        for _ in range(reps):
            fn()
        times.append((time.process_time() - t0) * 1e6 / reps)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--shapes", type=str, default="[]")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    out = {}
    with torch.no_grad():
        x, y = torch.randn(8, 16), torch.randn(8, 16)
        m64a, m64b = torch.randn(64, 64), torch.randn(64, 64)
        m256a, m256b = torch.randn(256, 256), torch.randn(256, 256)
        ba, bb = torch.randn(4, 64, 16), torch.randn(4, 16, 64)
        out["add_8x16"] = per_call(lambda: x + y, a.reps)
        out["mul_scalar_8x16"] = per_call(lambda: x * 0.9, a.reps)
        out["sum_8x16"] = per_call(lambda: x.sum(), a.reps)
        out["transpose_8x16"] = per_call(lambda: x.t().contiguous(), a.reps)
        out["matmul_64"] = per_call(lambda: m64a @ m64b, a.reps)
        out["matmul_256"] = per_call(lambda: m256a @ m256b, max(50, a.reps // 20))
        out["bmm_4x64x16x64"] = per_call(lambda: torch.bmm(ba, bb), a.reps)
    shapes = json.loads(a.shapes)
    if shapes:
        for kind, kw in (("default", {}), ("foreach", {"foreach": True}), ("fused", {"fused": True})):
            params = [torch.nn.Parameter(torch.randn(*s)) for s in shapes]
            for p in params:
                p.grad = torch.randn_like(p)
            opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=1e-4, **kw)
            out["adamw_" + kind] = per_call(opt.step, max(20, a.reps // 20))
    out["torch"] = torch.__version__
    out["threads"] = torch.get_num_threads()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
