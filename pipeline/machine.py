"""The kind of machine a run was trained on, in one line, for the provenance of its numbers.

A seed's weights are bitwise repeatable on the same kind of machine with the same libraries and
thread count, not across kinds: oneDNN, MKL and cuDNN pick their kernels (and so the order of
their float sums) by processor and instruction set, and a GAN's training amplifies a last-bit
difference into a different network within a few hundred steps (docs/results.md, "What reproduces
where"). So the train stage records this line in the checkpoint, the sample stage copies it to
samples.json, and the report's provenance says which kinds trained the study.
"""
from __future__ import annotations

import platform
import re
from pathlib import Path

import torch

UNRECORDED = "not recorded"  # a checkpoint from before the record existed
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")  # what decides the CPU kernels torch's libraries pick


def cpu_line(cpuinfo: str) -> str:
    """Model name, x86 family/model/stepping and the ISA_FLAGS present, from /proc/cpuinfo's text."""
    first = cpuinfo.split("\n\n")[0]
    fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in first.splitlines()) if _)
    name = fields.get("model name") or platform.processor() or platform.machine()
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    flags = set(fields.get("flags", "").split())
    isa = [f for f in ISA_FLAGS if f in flags]
    return f"{name} ({', '.join(ids + [' '.join(isa) or 'no AVX2'])})" if fields else name


def libraries() -> str:
    """torch's version and those of the oneDNN and MKL builds it carries."""
    shown = torch.__config__.show()
    found = [f"torch {torch.__version__}"]
    for label, pattern in (("oneDNN", r"MKL-DNN v([\d.]+)"), ("MKL", r"Math Kernel Library Version ([\d.]+)")):
        if m := re.search(pattern, shown):
            found.append(f"{label} {m.group(1)}")
    return ", ".join(found)


def describe(device: torch.device) -> str:
    """One line naming the processor (or GPU), the libraries and, on CPU, torch's thread count."""
    if device.type == "cuda":
        cap = ".".join(map(str, torch.cuda.get_device_capability(device)))
        cudnn = torch.backends.cudnn.version()
        return (f"cuda {torch.cuda.get_device_name(device)} (sm {cap}); {libraries()}, CUDA {torch.version.cuda}"
                + (f", cuDNN {cudnn}" if cudnn else ""))
    info = Path("/proc/cpuinfo")
    cpu = cpu_line(info.read_text()) if info.exists() else platform.processor() or platform.machine()
    threads = torch.get_num_threads()
    return f"cpu {cpu}; {libraries()}; {threads} thread{'s' if threads != 1 else ''}"
