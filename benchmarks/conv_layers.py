"""The dcgan networks' convolutions one at a time: oneDNN (what training runs) against the same
result written as a matmul (+ ``F.fold``), with the largest difference between the two.

    .venv/bin/python benchmarks/conv_layers.py [--batch-size 32] [--width 16] [--repeats 7]

For each of G's transposed convolutions, its forward pass; for each of D's convolutions, its input
gradient (the transposed convolution that D's backward pass runs when G's step needs it). Sizes
follow params.yaml (dataset resolution, ``train.width``, ``train.z_dim``) and the image channels of
data/meta.json (1 without it); one thread, the best of ``--repeats`` alternating timings.
With ``--variants``, G's output layer (the slowest above) is also timed, forward and forward plus
backward, in the forms that might keep oneDNN's bits: zero output channels padded on (2, 4, 16),
channels-last tensors, and the sub-pixel form (four 2x2 convolutions, one per output phase), each
with whether its output and its gradients equal oneDNN's to the bit. docs/performance.md quotes a run.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline import config, nets  # noqa: E402
from pipeline.errors import CommandLine  # noqa: E402
from pipeline.io import load_json  # noqa: E402


def transposed_as_matmul(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """conv_transpose2d(x, w) without bias: x's pixels times w's taps (one matmul), then overlapping taps summed."""
    b, _, h, wd = x.shape
    k = w.shape[-1]
    if h == wd == 1 and padding == 0:  # a 1x1 input: the output is the matmul itself
        return (x.flatten(1) @ w.flatten(1)).view(b, w.shape[1], k, k)
    cols = torch.matmul(w.flatten(1).t(), x.flatten(2))
    size = ((h - 1) * stride - 2 * padding + k, (wd - 1) * stride - 2 * padding + k)
    return F.fold(cols, size, k, padding=padding, stride=stride)


def input_gradient(grad: torch.Tensor, shape: tuple, w: torch.Tensor, stride: int, padding: int) -> torch.Tensor:
    """A convolution's gradient with respect to its input, as autograd computes it (oneDNN backward-data)."""
    return torch.ops.aten.convolution_backward(grad, torch.empty(shape), w, None, [stride] * 2, [padding] * 2, [1, 1],
                                               False, [0, 0], 1, [True, False, False])[0]


def best_us(fns: dict, repeats: int, n: int = 50) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            best[name] = min(best[name], (time.perf_counter() - t0) / n * 1e6)
    return best


def cases(params: dict, batch: int, width: int, channels: int):
    """(label, oneDNN callable, matmul callable) per layer of the default G and D."""
    res, z = params["dataset"]["resolution"], params["train"]["z_dim"]
    g, d = nets.Generator(z, width, res, channels), nets.Discriminator(channels, width, res)
    x = torch.randn(batch, z, 1, 1)
    for layer in [*g.convs, g.out]:
        w, s, p = layer.weight.detach(), layer.stride[0], layer.padding[0]
        y = F.conv_transpose2d(x, w, None, s, p)
        yield (f"G {layer.in_channels}->{layer.out_channels} {x.shape[-1]}->{y.shape[-1]} px forward",
               lambda x=x, w=w, s=s, p=p: F.conv_transpose2d(x, w, None, s, p),
               lambda x=x, w=w, s=s, p=p: transposed_as_matmul(x, w, s, p))
        x = y
    x = torch.randn(batch, channels, res, res)
    for layer in (m for m in d.modules() if isinstance(m, nn.Conv2d)):
        w, s, p = layer.weight.detach(), layer.stride[0], layer.padding[0]
        grad = torch.randn_like(F.conv2d(x, w, None, s, p))
        yield (f"D {layer.in_channels}->{layer.out_channels} {x.shape[-1]}->{grad.shape[-1]} px input gradient",
               lambda g_=grad, sh=tuple(x.shape), w=w, s=s, p=p: input_gradient(g_, sh, w, s, p),
               lambda g_=grad, w=w, s=s, p=p: transposed_as_matmul(g_, w, s, p))
        x = torch.randn(batch, layer.out_channels, grad.shape[-1], grad.shape[-1])


def subpixel_transposed(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """conv_transpose2d(x, w, b, stride 2, padding 1) for 4x4 kernels as four 2x2 convolutions, one per
    output phase: even rows and columns take kernel taps 3 and 1, odd ones 2 and 0."""
    taps, h, wd = ([3, 1], [2, 0]), x.shape[-2], x.shape[-1]
    phases = [w[:, :, taps[r]][:, :, :, taps[c]].transpose(0, 1) for r in (0, 1) for c in (0, 1)]
    y = F.conv2d(F.pad(x, (1, 1, 1, 1)), torch.cat(phases), b.repeat(4))
    out = y.new_empty(x.shape[0], w.shape[1], 2 * h, 2 * wd)
    for i, (r, c) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        out[:, :, r::2, c::2] = y[:, i * w.shape[1]:(i + 1) * w.shape[1], r:r + h, c:c + wd]
    return out


def output_layer_variants(params: dict, batch: int, width: int, channels: int, repeats: int) -> None:
    """Time G's output layer in each form that might keep oneDNN's bits (forward, and forward plus backward)."""
    layer = nets.Generator(params["train"]["z_dim"], width, params["dataset"]["resolution"], channels).out
    side = params["dataset"]["resolution"] // 2
    x = torch.randn(batch, layer.in_channels, side, side)
    w, b = layer.weight.detach(), layer.bias.detach()
    grad = torch.randn(batch, channels, 2 * side, 2 * side)

    def padded(n: int):  # n - channels zero output channels added, then dropped
        return lambda x_, w_, b_: F.conv_transpose2d(x_, F.pad(w_, (0, 0, 0, 0, 0, n - channels)),
                                                     F.pad(b_, (0, n - channels)), 2, 1)[:, :channels]

    last = torch.channels_last
    forms = {"oneDNN": lambda x_, w_, b_: F.conv_transpose2d(x_, w_, b_, 2, 1),
             **{f"{n} output channels": padded(n) for n in (2, 4, 16) if n > channels},
             "channels-last": lambda x_, w_, b_: F.conv_transpose2d(x_.contiguous(memory_format=last),
                                                                    w_.contiguous(memory_format=last), b_, 2, 1),
             "sub-pixel": subpixel_transposed}

    def backward(form):
        xs, ws, bs = (t.clone().requires_grad_() for t in (x, w, b))
        form(xs, ws, bs).backward(grad)
        return [t.grad.contiguous() for t in (xs, ws, bs)]

    forward_us = best_us({k: (lambda f=f: f(x, w, b)) for k, f in forms.items()}, repeats)
    both_us = best_us({k: (lambda f=f: backward(f)) for k, f in forms.items()}, repeats, n=20)
    ref_out, ref_grads = forms["oneDNN"](x, w, b), backward(forms["oneDNN"])
    print(f"\nG's output layer {layer.in_channels}->{channels}, {side}->{2 * side} px, batch {batch}:")
    print("| form | forward us | forward + backward us | output equal to oneDNN's | gradients (x, w, b) equal |")
    print("| --- | --- | --- | --- | --- |")
    for name, form in forms.items():
        same = [torch.equal(a, r) for a, r in zip(backward(form), ref_grads)]
        print(f"| {name} | {forward_us[name]:,.0f} | {both_us[name]:,.0f} | "
              f"{torch.equal(form(x, w, b).contiguous(), ref_out)} | {', '.join(map(str, same))} |")


def main(argv: list[str] | None = None) -> None:
    parser = CommandLine(prog="benchmarks/conv_layers.py", description=__doc__.splitlines()[0])
    config.add_params_argument(parser)
    parser.add_argument("--batch-size", type=int, help="default: train.batch_size")
    parser.add_argument("--width", type=int, help="default: train.width")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--variants", action="store_true",
                        help="also time G's output layer in forms that might keep oneDNN's bits")
    args = parser.parse_args(argv)
    params = config.load(args.params)
    meta = Path("data/meta.json")
    channels = load_json(meta)["shape"][-1] if meta.exists() else 1
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print("| layer | oneDNN us | matmul us | oneDNN / matmul | largest difference |")
    print("| --- | --- | --- | --- | --- |")
    for label, onednn, matmul in cases(params, args.batch_size or params["train"]["batch_size"],
                                       args.width or params["train"]["width"], channels):
        t = best_us({"onednn": onednn, "matmul": matmul}, args.repeats)
        diff = (onednn() - matmul()).abs().max().item()
        print(f"| {label} | {t['onednn']:,.0f} | {t['matmul']:,.0f} | {t['onednn'] / t['matmul']:.2f} | {diff:.1e} |")
    if args.variants:
        output_layer_variants(params, args.batch_size or params["train"]["batch_size"],
                              args.width or params["train"]["width"], channels, args.repeats)


if __name__ == "__main__":
    main()
