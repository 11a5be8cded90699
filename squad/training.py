"""How a run trains: the floating-point precision the machine suits (a pure function of the device's capabilities,
so it is tested without the hardware), and the optimizer's settings and parameter groups."""

import re
from pathlib import Path
from typing import NamedTuple

import torch


class DeviceCapabilities(NamedTuple):
    """What the machine offers for mixed precision: a CUDA device, and whether it computes in bf16."""

    cuda: bool
    cuda_bf16: bool

    @classmethod
    def detect(cls) -> "DeviceCapabilities":
        """Return this machine's capabilities."""
        cuda = torch.cuda.is_available()
        return cls(cuda=cuda, cuda_bf16=cuda and torch.cuda.is_bf16_supported())


class Precision(NamedTuple):
    """The precision a run trains in ("bf16", "fp16" or "float32") and why, as its first log line says."""

    name: str
    reason: str


def choose_precision(bf16: bool | None, fp16: bool | None, use_cpu: bool, device: DeviceCapabilities,
                     launcher: str = "no") -> Precision:
    """Return the training precision: what --bf16/--fp16 say when either is given, else what the launcher's
    mixed precision (accelerate's config or `accelerate launch --mixed_precision`) names, else the device's best:
    bf16 where CUDA has it (it keeps float32's range, so Adafactor needs no scaler), fp16 with a gradient scaler on
    older CUDA devices, float32 on a CPU (bf16 pays only with AVX512-BF16 or AMX)."""
    if bf16 is not None or fp16 is not None:
        name = "bf16" if bf16 else "fp16" if fp16 else "float32"
        return Precision(name, "as --bf16/--fp16 ask")
    if launcher in ("bf16", "fp16"):
        return Precision(launcher, "as accelerate's mixed_precision asks")
    if use_cpu or not device.cuda:
        return Precision("float32", "CPU run; --bf16 true speeds it up on CPUs with AVX512-BF16 or AMX")
    if device.cuda_bf16:
        return Precision("bf16", "the CUDA device supports bf16; --bf16 false trains in float32")
    return Precision("fp16", "the CUDA device has no bf16, so fp16 with a gradient scaler; --fp16 false trains in "
                     "float32")


def cpu_flags() -> set[str] | None:
    """Return the CPU's feature flags from /proc/cpuinfo (torch has no public probe for bf16 instructions), or None
    where they cannot be read."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    return {flag for line in lines if line.startswith(("flags", "Features")) for flag in line.split(":", 1)[1].split()}


def refuse_deepspeed_with_adafactor(deepspeed: bool, optim: str) -> None:
    """Raise a ValueError when DeepSpeed would run Adafactor: on ZeRO's flat 1-D partitions it keeps full second
    moments instead of factored ones, and clips its updates per partition instead of per weight matrix."""
    if deepspeed and optim == "adafactor":
        raise ValueError("DeepSpeed with Adafactor: ZeRO flattens the parameters into 1-D partitions, so Adafactor "
                         "would lose its factored second moments; train with plain DDP (accelerate launch "
                         "--multi_gpu) or pass another --optim")


# What `--optim_args` may set for Adafactor (transformers' `Adafactor` keeps them per parameter group).
ADAFACTOR_OPTIONS = ("beta1", "decay_rate", "clip_threshold")


def adafactor_options(optim_args: str | None) -> dict[str, float]:
    """Return the Adafactor settings that `--optim_args` gives, e.g. "beta1=0.9" (a first moment, which Adafactor
    keeps none of by default), as numbers; a ValueError naming `--optim_args` for an unknown setting or a non-number."""
    options = {}
    for item in filter(None, (optim_args or "").replace(" ", "").split(",")):
        name, _, value = item.partition("=")
        if name not in ADAFACTOR_OPTIONS:
            raise ValueError(f"--optim_args {optim_args!r}: Adafactor takes {', '.join(ADAFACTOR_OPTIONS)} "
                             f"(as name=value, comma-separated), not {name!r}")
        try:
            options[name] = float(value)
        except ValueError:
            raise ValueError(f"--optim_args {optim_args!r}: {name} must be a number, got {value!r}") from None
    return options


def parameter_groups(model: torch.nn.Module, decay_names: list[str], weight_decay: float, learning_rate: float,
                     layer_decay: float | None = None) -> list[dict]:
    """Return the optimizer's parameter groups: the trainable parameters split by weight decay (`decay_names` take
    `weight_decay`, the rest none) and by learning rate: with `layer_decay`, encoder layer i of n (0 at the bottom)
    learns at `learning_rate` × layer_decay ** (n − i) and the embeddings at layer_decay ** (n + 1), so the most
    general features move least; the answer head keeps `learning_rate`."""
    num_layers = getattr(model.config, "n_layers", 0)
    encoder = f"{model.base_model_prefix}."
    groups: dict[tuple[float, float], list] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        rate = learning_rate
        if layer_decay is not None and name.startswith(encoder):
            layer = re.search(r"\.layer\.(\d+)\.", name)
            rate = learning_rate * layer_decay ** (num_layers - int(layer.group(1)) if layer else num_layers + 1)
        decay = weight_decay if name in decay_names else 0.0
        groups.setdefault((rate, decay), []).append(parameter)
    return [{"params": params, "lr": rate, "weight_decay": decay} for (rate, decay), params in groups.items()]
