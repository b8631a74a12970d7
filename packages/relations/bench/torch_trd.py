"""PyTorch baseline for `pnpm bench` in @vrepa/relations: the official TRD formula (VideoREPA trainer,
`compute_loss`, branch 'token_relation_distillation'), forward + backward w.r.t. the student, float32 CPU.

Our own code reproducing the official computation: tokens reshaped to [B, F, h*w, C], rows normalised,
per-frame bmm against all tokens ([B*F, hw, F*hw]), relu(|S_s - S_t| - margin).mean(), backward.
Prints one JSON line per N: {"N", "D", "ms_median", "runs", "threads", "torch"} or {"N", "skipped": why}.

usage: python torch_trd.py --N 900 3600 --D 768 --hw 150 --runs 3 [--max-bytes 8e9]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as Fn


def official_trd(align, align_target, F, hw, margin):
    B = align.shape[0]
    a = Fn.normalize(align.reshape(B, F, hw, -1), dim=-1)
    t = Fn.normalize(align_target.reshape(B, F, hw, -1), dim=-1)
    rows_a = a.flatten(0, 1)  # [B*F, hw, C]
    all_a = a.flatten(1, 2).unsqueeze(1).expand(-1, F, -1, -1).flatten(0, 1)  # [B*F, F*hw, C]
    rows_t = t.flatten(0, 1)
    all_t = t.flatten(1, 2).unsqueeze(1).expand(-1, F, -1, -1).flatten(0, 1)
    s_s = torch.bmm(rows_a, all_a.transpose(1, 2))
    s_t = torch.bmm(rows_t, all_t.transpose(1, 2))
    return Fn.relu((s_s - s_t).abs() - margin).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--N", type=int, nargs="+", required=True)
    ap.add_argument("--D", type=int, default=768)
    ap.add_argument("--hw", type=int, default=150)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--margin", type=float, default=0.1)
    ap.add_argument("--max-bytes", type=float, default=8e9)
    args = ap.parse_args()
    torch.manual_seed(0)
    for N in args.N:
        # official forward+backward keeps about six float32 [N, N] tensors alive
        est = 6 * 4 * N * N
        if est > args.max_bytes:
            print(json.dumps({"N": N, "skipped": f"out of memory (estimated {est / 2**20:.0f} MB > {args.max_bytes / 2**20:.0f} MB)"}), flush=True)
            continue
        F = N // args.hw
        s = torch.randn(1, N, args.D)
        t = torch.randn(1, N, args.D)
        times = []
        runs = args.runs if N <= 4000 else 1
        for i in range(runs + 1):
            x = s.clone().requires_grad_(True)
            t0 = time.perf_counter()
            loss = official_trd(x, t, F, args.hw, args.margin)
            loss.backward()
            _ = loss.detach().item()
            dt = (time.perf_counter() - t0) * 1e3
            if i > 0 or runs == 1:
                times.append(dt)
        times.sort()
        print(json.dumps({"N": N, "D": args.D, "ms_median": times[len(times) // 2], "runs": len(times),
                          "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)


if __name__ == "__main__":
    main()
