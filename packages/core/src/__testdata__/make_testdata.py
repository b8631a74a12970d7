"""Regenerate the small PyTorch checkpoints the core tests read (needs torch and safetensors):
    python make_testdata.py
Each `<name>.pth` has a `<name>.expected.safetensors` written by Python's safetensors with the
tensors as torch sees them (contiguous, same dtype), keyed by the dotted path of the tensor in the
checkpoint. The TypeScript tests read both and compare.
"""
import collections
import io
import zipfile

import torch
from safetensors.torch import save_file

torch.manual_seed(0)


def flat(obj, prefix=""):
    out = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj.detach().contiguous().clone()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flat(v, f"{prefix}.{i}" if prefix else str(i)))
    return out


def save(name, obj, **kw):
    torch.save(obj, f"{name}.pth", **kw)
    save_file(flat(obj), f"{name}.expected.safetensors")


# 1. every storage dtype
x = torch.randn(3, 5)
save("dtypes", {
    "f32": x,
    "f16": x.half(),
    "bf16": x.bfloat16(),
    "f64": x.double(),
    "i64": torch.tensor([[-(2**40), 7, 0]], dtype=torch.int64),
    "i32": torch.tensor([-(2**31), 2**31 - 1, 5], dtype=torch.int32),
    "i16": torch.tensor([-32768, 32767, -1], dtype=torch.int16),
    "i8": torch.tensor([-128, 127, 3], dtype=torch.int8),
    "u8": torch.tensor([0, 255, 17], dtype=torch.uint8),
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(2.5),
    "empty": torch.zeros(0, 4),
})

# 2. strided views sharing storages
base = torch.arange(120, dtype=torch.float32).reshape(4, 5, 6)
w = torch.randn(8, 3, 3, 3).contiguous(memory_format=torch.channels_last)
save("views", {
    "base": base,
    "transposed": base.transpose(0, 2),
    "sliced": base[1:3, ::2, 3:],
    "row": base[2, 3],
    "expanded": torch.arange(3.0).reshape(3, 1).expand(3, 4),
    "permuted_i64": torch.arange(24).reshape(2, 3, 4).permute(2, 0, 1),
    "channels_last": w,
    "half_t": torch.randn(4, 6).half().t(),
})

# 3. a training checkpoint: nested state dict with _metadata, parameters, scalars, strings, torch.Size
net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.BatchNorm1d(3))
ckpt = {
    "state_dict": net.state_dict(),
    "epoch": 3,
    "best": 0.875,
    "big": 2**70,
    "neg": -(2**40),
    "name": "tiny ünicode",
    "raw": b"\x00\x01bytes",
    "flags": [True, False, None],
    "shape": torch.Size([2, 3]),
    "pair": (1, "a"),
    "param": torch.nn.Parameter(torch.randn(2, 2)),
    "ema": {"decay": 0.999, "weights": collections.OrderedDict(w0=torch.randn(3))},
}
save("nested_p2", ckpt)
save("nested_p4", ckpt, pickle_protocol=4)
save("nested_p5", ckpt, pickle_protocol=5)

# 4. the same archive re-packed with deflate and zip64 records (torch writes stored entries; other tools may not)
with zipfile.ZipFile("dtypes.pth") as src, zipfile.ZipFile("dtypes_deflate_zip64.pth", "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        with dst.open(info.filename, "w", force_zip64=True) as f:
            f.write(src.read(info.filename))
assert torch.load("dtypes_deflate_zip64.pth", weights_only=True)["f32"].equal(x)
