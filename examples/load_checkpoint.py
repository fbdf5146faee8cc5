"""Load a safetensors checkpoint ten times, as a server that reloads models does, three ways.

The file: an 8-byte little-endian header length, a JSON header naming each tensor with its
dtype, shape and byte offsets, then the tensors' bytes. Without `--file`, a synthetic one is
written first (about 230 MiB of float32 tensors of 4 KiB to 32 MiB, shaped like a small
transformer's: embeddings, then per layer attention and MLP weights, biases and norms).

Each load reads every tensor into memory of its own and keeps them all until the next load
replaces the model:

- `read`: `f.read(n)` per tensor, a fresh `bytes` each;
- `bytearray`: `bytearray(n)` (allocated and zeroed) + `readinto`;
- `pooled`: `SizedPool.allocate(n)` + `readinto`, the buffers going back to the pool when the
  next load replaces them, so from the 2nd load on no tensor allocates.

Each way runs in a fresh process, so its peak RSS is its own. Run
`python examples/load_checkpoint.py --help`.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Final, TypedDict

from objpool import ByteBuffer, OwnedRef, SizedPool

METHODS: Final = ("read", "bytearray", "pooled")
DTYPE_BYTES: Final = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class Tensor:
    """One tensor's place in the file: absolute byte offset and size."""

    name: str
    offset: int
    size: int


def transformer_shapes(layers: int, d_model: int, vocab: int, context: int) -> Iterator[tuple[str, list[int]]]:
    """Tensor names and shapes of a small GPT-style model."""
    yield "wte", [vocab, d_model]
    yield "wpe", [context, d_model]
    for i in range(layers):
        p = f"h.{i}."
        yield p + "ln_1.weight", [d_model]
        yield p + "ln_1.bias", [d_model]
        yield p + "attn.c_attn.weight", [d_model, 3 * d_model]
        yield p + "attn.c_attn.bias", [3 * d_model]
        yield p + "attn.c_proj.weight", [d_model, d_model]
        yield p + "attn.c_proj.bias", [d_model]
        yield p + "ln_2.weight", [d_model]
        yield p + "ln_2.bias", [d_model]
        yield p + "mlp.c_fc.weight", [d_model, 4 * d_model]
        yield p + "mlp.c_fc.bias", [4 * d_model]
        yield p + "mlp.c_proj.weight", [4 * d_model, d_model]
        yield p + "mlp.c_proj.bias", [d_model]
    yield "ln_f.weight", [d_model]
    yield "ln_f.bias", [d_model]


def write_checkpoint(path: str, layers: int = 4, d_model: int = 1024, vocab: int = 8192, context: int = 1024) -> int:
    """Write a synthetic safetensors file at `path`; return its size in bytes."""
    header: dict[str, object] = {"__metadata__": {"format": "pt", "written_by": "objpool examples/load_checkpoint.py"}}
    offset = 0
    shapes = list(transformer_shapes(layers, d_model, vocab, context))
    for name, shape in shapes:
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes
    chunk = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        left = offset
        while left:
            n = min(left, len(chunk))
            f.write(chunk[:n])
            left -= n
    return 8 + len(raw) + offset


def read_index(f: io.RawIOBase) -> list[Tensor]:
    """The tensors of the safetensors file `f`, in file order.

    Raises:
        ValueError: the header is not a safetensors header.
    """
    f.seek(0)
    length = int.from_bytes(f.read(8), "little")
    if not 2 <= length <= 100 << 20:
        raise ValueError(f"not a safetensors file: header length {length}")
    header = json.loads(f.read(length))
    start = 8 + length
    tensors = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        if info["dtype"] not in DTYPE_BYTES or not 0 <= begin <= end:
            raise ValueError(f"tensor {name!r}: unexpected dtype or offsets {info}")
        tensors.append(Tensor(name, start + begin, end - begin))
    return sorted(tensors, key=lambda t: t.offset)


def read_exactly(f: io.RawIOBase, view: memoryview) -> None:
    """Fill all of `view` from `f` (a raw file may return short reads)."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            raise EOFError(f"the file ended {len(view) - got} bytes short of a tensor")
        got += n


class Loader:
    """Loads every tensor one way, keeping the last load's tensors until the next load."""

    def __init__(self, method: str, tensors: list[Tensor]) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.method = method
        self.tensors = tensors
        self.model: list[object] = []
        self.refs: list[OwnedRef[ByteBuffer]] = []
        largest = max((t.size for t in tensors), default=1)
        total = sum(t.size for t in tensors)
        max_size = 1 << max(12, (largest - 1).bit_length())
        # Keep a whole model's buffers (each rounded up to its power-of-two class).
        self.pool = SizedPool(min_size=4096, max_size=max_size, max_retained=2 * total + max_size)

    def load(self, f: io.RawIOBase) -> None:
        """Replace the model with a fresh load of every tensor."""
        for ref in self.refs:  # the previous model goes: its buffers back to the pool
            ref.release()
        self.refs.clear()
        self.model = []
        for t in self.tensors:
            f.seek(t.offset)
            if self.method == "read":
                data = f.read(t.size)
                if len(data) != t.size:
                    raise EOFError(f"tensor {t.name!r}: {len(data)} of {t.size} bytes")
                self.model.append(data)
            elif self.method == "bytearray":
                buf = bytearray(t.size)
                read_exactly(f, memoryview(buf))
                self.model.append(buf)
            else:
                ref = self.pool.allocate(t.size)
                read_exactly(f, ref.value.reserve(t.size))
                self.refs.append(ref)
                self.model.append(ref.value)

    def close(self) -> None:
        for ref in self.refs:
            ref.release()
        self.refs.clear()
        self.model = []


class Result(TypedDict):
    """One method's run: seconds per load, in order, and the process's peak RSS."""

    method: str
    times: list[float]
    peak_rss: int
    tensors: int


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def run_method(path: str, method: str, loads: int) -> Result:
    """Load `path` `loads` times one way, in this process; return per-load seconds and peak RSS."""
    with open(path, "rb", buffering=0) as f:
        loader = Loader(method, read_index(f))
        times = []
        for _ in range(loads):
            t0 = time.perf_counter()
            loader.load(f)
            times.append(time.perf_counter() - t0)
        loader.close()
    return {"method": method, "times": times, "peak_rss": peak_rss_bytes(), "tensors": len(loader.tensors)}


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def compare(path: str, loads: int) -> list[Result]:
    """Each method in a fresh process of this interpreter, one after the other."""
    results: list[Result] = []
    for method in METHODS:
        child = [sys.executable, os.path.abspath(__file__), "--file", path, "--loads", str(loads), "--method", method]
        out = subprocess.run(child, capture_output=True, text=True, check=True, timeout=900)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return results


def report(results: list[Result], size: int) -> list[str]:
    """A table: first load, median of the later loads, speedup against bytearray, peak RSS."""
    later = {r["method"]: median(r["times"][1:] or r["times"]) for r in results}
    base = later["bytearray"]
    rss_base = next(r["peak_rss"] for r in results if r["method"] == "bytearray")
    lines = [f"{'method':<10} {'1st load':>10} {'2nd-last, median':>17} {'vs bytearray':>13} {'peak RSS':>19}"]
    for r in results:
        m, rss = r["method"], r["peak_rss"]
        lines.append(
            f"{m:<10} {r['times'][0] * 1000:>7.1f} ms {later[m] * 1000:>14.1f} ms {base / later[m]:>12.2f}x"
            f" {rss / 2**20:>6.0f} MiB ({rss / rss_base:.2f}x)"
        )
    lines.append(f"({size / 2**20:.0f} MiB of tensors per load, {results[0]['tensors']} tensors, {len(results[0]['times'])} loads)")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or take) a checkpoint, load it every way in fresh processes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--file", help="a .safetensors file to load (default: write a synthetic one)")
    parser.add_argument("--loads", type=int, default=10, help="loads per method (default 10)")
    parser.add_argument("--layers", type=int, default=4, help="synthetic model: transformer layers (default 4)")
    parser.add_argument("--d-model", type=int, default=1024, help="synthetic model: width (default 1024)")
    parser.add_argument("--method", choices=METHODS, help="run one method in this process and print JSON")
    args = parser.parse_args(argv)
    if args.loads < 1:
        parser.error("--loads must be >= 1")
    if args.method:
        if not args.file:
            parser.error("--method needs --file")
        print(json.dumps(run_method(args.file, args.method, args.loads)))
        return 0
    with tempfile.TemporaryDirectory(prefix="objpool-checkpoint-") as tmp:
        path = args.file
        if path is None:
            path = os.path.join(tmp, "model.safetensors")
            write_checkpoint(path, layers=args.layers, d_model=args.d_model, vocab=8 * args.d_model, context=args.d_model)
        with open(path, "rb", buffering=0) as f:
            size = sum(t.size for t in read_index(f))
        for line in report(compare(path, args.loads), size):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
