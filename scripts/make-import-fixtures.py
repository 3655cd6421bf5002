"""Writes the PyTorch checkpoints the importer tests read (Tests/Fixtures/import/).

Run with a Python that has torch (e.g. the benchmark venv):
    python3 scripts/make-import-fixtures.py
The tests themselves need no Python; the files are committed.
"""
import argparse
import collections
import io
import json
import os
import pickle
import struct
import zipfile

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "Fixtures", "import")
# A file the hostile pickles would create if anything executed them.
MARKER = "/tmp/loom-import-fixture-executed"


def read_safetensors(path):
    """The tensors of a safetensors file, by its documented layout (u64 header size, JSON, data)."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    dtypes = {"F32": np.float32, "I64": np.int64, "I32": np.int32}
    out = collections.OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        array = np.frombuffer(data[start:end], dtype=dtypes[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(array.copy())
    return out


def write_safetensors(tensors, path):
    """float32 / int64 copies of `tensors` in the safetensors layout: the expected values."""
    header, chunks, offset = {}, [], 0
    for name, tensor in tensors.items():
        t = tensor.detach()
        array = t.to(torch.int64).numpy() if not t.is_floating_point() else t.to(torch.float32).numpy()
        data = np.ascontiguousarray(array).tobytes()
        header[name] = {"dtype": "I64" if array.dtype == np.int64 else "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(encoded)) + encoded + b"".join(chunks))


class Payload:
    """An object whose unpickling would run a shell command."""

    def __reduce__(self):
        return (os.system, ("touch " + MARKER,))


def save(obj, name):
    torch.save(obj, os.path.join(OUT, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=gen)
    sd = collections.OrderedDict()
    sd["dense"] = torch.randn(3, 5, generator=gen)
    sd["transposed"] = base.t()                      # non-contiguous: strides (1, 6)
    sd["row_slice"] = base[1:3]                      # shares base's storage at an offset
    sd["parameter"] = torch.nn.Parameter(torch.randn(7, generator=gen))
    sd["steps"] = torch.arange(5, dtype=torch.int64)
    sd["scalar"] = torch.tensor(2.5)
    save(sd, "state_dict.pt")
    write_safetensors(sd, os.path.join(OUT, "state_dict.expected.safetensors"))

    low = collections.OrderedDict()
    values = torch.tensor([0.0, -1.5, 3.140625, 65504.0, 6.1e-5, 1e-7, -0.0])
    low["half"] = values.to(torch.float16)
    low["bfloat16"] = torch.randn(2, 3, generator=gen).to(torch.bfloat16)
    low["double"] = torch.randn(4, generator=gen, dtype=torch.float64)
    save(low, "low_precision.pt")
    write_safetensors(low, os.path.join(OUT, "low_precision.expected.safetensors"))

    golden = read_safetensors(os.path.join(ROOT, "Tests", "Fixtures", "sit_ig_tiny.safetensors"))
    model = collections.OrderedDict((k[len("param."):], v) for k, v in golden.items() if k.startswith("param."))
    ema = collections.OrderedDict(model.items())          # shares the storages: one copy in the file
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1e-4)
    args = argparse.Namespace(model="SiT-tiny", lr=1e-4, encoder_depth=1, cfg_prob=0.1)
    save({"model": model, "ema": ema, "opt": optimizer.state_dict(), "args": args, "steps": 400},
         "sit_ig_tiny_training.pt")

    save({"w": torch.ones(2), "payload": Payload()}, "hostile_global.pt")
    save(Payload(), "hostile_reduce.pt")
    save({"model": collections.OrderedDict(w=torch.ones(2)), "args": Payload()}, "hostile_outside_key.pt")

    # A pickle with an opcode no state dict uses (INST builds an object by name).
    pickled = b"\x80\x02(cos\nsystem\nX\x05\x00\x00\x00touchi__main__\nEvil\n."
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("hostile_opcode/data.pkl", pickled)
        archive.writestr("hostile_opcode/byteorder", "little")
    with open(os.path.join(OUT, "hostile_opcode.pt"), "wb") as f:
        f.write(buffer.getvalue())
    # Pickle's own reader would run the payloads; the importer must not.
    assert not os.path.exists(MARKER)
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
