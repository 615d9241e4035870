"""``mvmr plan``: what a run will cost before it is launched.

For one optimiser step it counts, per process and for the global batch: each representation's
dimension (as the loss sees it, after any projection), its float32 bytes per batch and where it
comes from (cache or live); the distance-correlation FLOPs (the Gram matrices of the global
batch); the encoder's FLOPs (``torch.utils.flop_counter`` on a real forward + backward); an
estimate of peak memory (weights, gradients, optimiser state, saved activations measured with
autograd hooks, representations, distance matrices, projection matrices); and the image
decoding rate the data loader must sustain. For the whole run it gives the feature cache's size
on disk and its build time (representations timed on a few images) and the projected wall time.

The step time comes from ``--measure`` (a few real training steps on this machine) or from a
throughput the user measured elsewhere (``--throughput``, images per second, e.g. from
``benchmarks/gpu_check.py``); without either the times are left open rather than guessed.
"""

from __future__ import annotations

import math
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from mvmr.config import Config
from mvmr.data import build_dataset
from mvmr.errors import ConfigError, DataError
from mvmr.methods import get_method
from mvmr.representations import build as build_representation
from mvmr.representations.teachers import PrecomputedEmbeddings, build_teacher, parse_teacher_spec
from mvmr.training.timing import time_steps
from mvmr.transforms import PARAMETER_COLUMNS

__all__ = ["Plan", "RepresentationPlan", "make_plan", "format_plan"]

_OPTIMIZER_STATES = {"adam": 2, "adamw": 2, "lars": 1}  # float32 tensors of state per parameter


@dataclass
class RepresentationPlan:
    """One target z*_k: where it comes from and what it costs per step."""

    name: str
    source: str  # "cache" | "live" | "precomputed"
    raw_dim: int
    dim: int  # as the loss sees it (after a projection)
    batch_bytes: int  # float32 bytes of the global batch (what the loss holds after the all-gather)
    disk_bytes_per_image: int  # float16 bytes in the cache (0 when live)
    dcor_gflop: float  # the Gram matrix of the global batch, forward
    seconds_per_image: float | None = None  # measured on this machine's device (cache build / live cost)


@dataclass
class Plan:
    """The cost of a config, per step and for the whole run (see the module doc)."""

    config: str
    method: str
    device: str
    world_size: int
    batch_size: int
    global_batch: int
    image_size: int
    images: int  # in the dataset (the cache holds them all)
    train_images: int  # without the online probe's held-out images
    images_source: str  # where ``images`` comes from: --images, the data, or a shipped dataset's known size
    representations: list[RepresentationPlan]
    encoder_gflop_per_image: float  # forward + backward, one view
    encoder_tflop_per_step: float  # both views, the process's batch
    dcor_gflop_per_step: float
    memory_bytes: dict[str, int]
    batches_per_epoch: int
    total_batches: int
    cache_bytes: int
    cache_build_seconds: float | None = None
    step_seconds: float | None = None
    step_source: str = "unknown: give --measure or --throughput"
    wall_seconds: float | None = None
    decode_images_per_second: float | None = None  # per process
    measured: dict[str, Any] = field(default_factory=dict)

    @property
    def peak_memory_bytes(self) -> int:
        return sum(self.memory_bytes.values())

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["peak_memory_bytes"] = self.peak_memory_bytes
        return out


def _world_size(config: Config) -> int:
    """The processes of a run: devices per node (all GPUs here for 'auto' and -1) times nodes."""
    devices = config.trainer.devices
    if devices in ("auto", "-1", -1):
        count = torch.cuda.device_count()
    else:
        count = devices if isinstance(devices, int) else len([d for d in devices.split(",") if d])
    return max(1, int(count)) * config.trainer.num_nodes


#: Images per split of the datasets whose size is known, by ``(data.kind, data.split)``: a plan costs a
#: run on them before the data is in place.
KNOWN_SIZES: dict[tuple[str, str], int] = {
    ("stl10", "train"): 5_000,
    ("stl10", "test"): 8_000,
    ("stl10", "unlabeled"): 100_000,
    ("stl10", "train+unlabeled"): 105_000,
    ("cifar10", "train"): 50_000,
    ("cifar10", "test"): 10_000,
    ("cifar100", "train"): 50_000,
    ("cifar100", "test"): 10_000,
    ("fashion_mnist", "train"): 60_000,
    ("fashion_mnist", "test"): 10_000,
}
#: ImageNet-1K is an image folder: known by the shipped config that reads it, ``(config name, split)``.
KNOWN_FOLDERS: dict[tuple[str, str], int] = {("imagenet", "train"): 1_281_167, ("imagenet", "val"): 50_000}


def _dataset_size(config: Config, images: int | None, name: str = "") -> tuple[int, str]:
    """The training images and where that number comes from: ``--images``, the data, or the known size
    of a shipped dataset whose files are not here."""
    source = "given (--images)"
    if images is None:
        d = config.data
        try:
            images = len(build_dataset(d.kind, d.root, split=d.split, channels=d.channels))
            source = "counted in the data"
        except DataError as err:
            known = KNOWN_SIZES.get((d.kind, d.split))
            if known is None and d.kind == "imagefolder":
                known = KNOWN_FOLDERS.get((Path(name).stem if name else "", d.split))
            if known is None:
                raise DataError(f"{err}; to plan without the data, give the number of images (--images N)") from err
            images, source = (
                known,
                f"the known size of {d.kind if d.kind != 'imagefolder' else Path(name).stem} "
                f"split {d.split}; the data is not here",
            )
    n = min(images, config.data.subset) if config.data.subset else images
    return n, source + (
        f", data.subset {config.data.subset}" if config.data.subset and config.data.subset < images else ""
    )


def _time_per_image(module: torch.nn.Module, images: torch.Tensor, repeats: int = 2) -> float:
    """Seconds per image of ``module`` on the batch ``images``: the best of ``repeats`` timed calls after
    a warm-up call on the same batch. The warm-up must have the timed shape: a first call at a new
    batch size pays one-off costs (kymatio's ScatNet was ~3.4x slower per image on its first batch of
    4 than on its second, on 2 CPU cores), which a smaller warm-up would leave in the measurement."""
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    best = float("inf")
    with torch.no_grad():
        module(images)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            module(images)
            sync()
            best = min(best, time.perf_counter() - start)
    return best / images.shape[0]


def _targets(
    config: Config, shape: tuple[int, int, int], global_batch: int, device: torch.device, timing_images: int
) -> list[RepresentationPlan]:
    """Every target of the method with its dimension and costs (representations timed on a few images)."""
    if not get_method(config.method).uses_targets:
        return []
    r, out = config.representations, []
    sample = torch.rand(timing_images, *shape, device=device)
    reps = [(spec.name, build_representation(spec.name, **spec.kwargs)) for spec in r.items]
    views = {spec.name: spec.view for spec in r.items}
    # (name, module, cached, stored views per image): targets of the augmented view are computed live
    modules: list[tuple[str, Any, bool, int]] = [
        (name, rep, r.cache_dir is not None and rep.deterministic and views[name] == "clean", 1) for name, rep in reps
    ]
    t = config.teacher
    if t.spec is not None:
        if parse_teacher_spec(t.spec)[0] == "embeddings":
            emb = build_teacher(t.spec, name=t.name, **t.options)
            if not isinstance(emb, PrecomputedEmbeddings):
                raise TypeError(f"teacher {t.spec!r} gave a {type(emb).__name__}, not precomputed embeddings")
            out.append(
                RepresentationPlan(
                    t.name,
                    "precomputed",
                    emb.dim,
                    emb.dim,
                    global_batch * emb.dim * 4,
                    0,
                    2 * global_batch**2 * emb.dim / 1e9,
                )
            )
        else:
            teacher = build_teacher(t.spec, weights=t.weights, name=t.name, allow_random=True, **t.options)
            stored = t.cached_views if t.view == "augmented" else 0
            modules.append((t.name, teacher, t.cache and (t.view == "clean" or stored > 0), max(1, stored)))
    for name, module, cached, per_image in modules:
        raw = int(module.embed_dim) if hasattr(module, "embed_dim") else int(module.output_dim(*shape))
        dim = r.project_dim if (r.project_dim is not None and raw > r.project_dim and name != t.name) else raw
        seconds = _time_per_image(module.to(device).eval(), sample) if timing_images else None
        source = ("cache" if per_image == 1 else f"cache ({per_image} stored views)") if cached else "live"
        disk = per_image * (dim * 2 + (_VIEW_PARAMETER_BYTES if per_image > 1 else 0)) if cached else 0
        out.append(
            RepresentationPlan(
                name,
                source,
                raw,
                dim,
                global_batch * dim * 4,
                disk,
                2 * global_batch**2 * dim / 1e9,
                None if seconds is None else seconds * (per_image if cached else 1),
            )
        )
    return out


#: the float64 parameters of one stored view
_VIEW_PARAMETER_BYTES = len(PARAMETER_COLUMNS) * 8


def _model_costs(config: Config, shape: tuple[int, int, int]) -> tuple[float, int, int]:
    """(GFLOP per image for forward + backward, parameters, saved-activation bytes per image).

    Counted on the meta device (shapes only, no arithmetic) for a forward + backward at batch 2
    and 4 (batch norm needs more than one image in training mode): the difference of the two
    leaves out what is saved once per batch (the weights a layer keeps for its backward pass).
    Mixed precision is counted with 2-byte activations.
    """
    with torch.device("meta"):
        model = get_method(config.method).build_model(config, shape[0])
    dtype = torch.bfloat16 if "mixed" in config.trainer.precision else torch.float32
    model.to(dtype)
    flops, saved = {}, {}
    total = [0]

    def pack(t: torch.Tensor) -> torch.Tensor:
        total[0] += t.numel() * t.element_size()
        return t

    for batch in (2, 4):
        total[0] = 0
        with FlopCounterMode(display=False) as counter, torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(torch.empty(batch, *shape, device="meta", dtype=dtype)).float().sum().backward()
        flops[batch], saved[batch] = counter.get_total_flops(), total[0]
        model.zero_grad(set_to_none=True)
    params = sum(p.numel() for p in model.parameters())
    return (flops[4] - flops[2]) / 2 / 1e9, params, max(0, (saved[4] - saved[2]) // 2)


def make_plan(
    config: Config,
    *,
    images: int | None = None,
    measure_steps: int = 0,
    throughput: float | None = None,
    timing_images: int = 32,
    device: str | torch.device | None = None,
    name: str = "",
) -> Plan:
    """The :class:`Plan` of ``config``. ``images``: the number of training images (default: count the
    dataset); ``measure_steps``: time that many real steps here; ``throughput``: images per second
    per process measured elsewhere (used when nothing is measured); ``timing_images``: the batch each
    representation is timed on (the cache is built in batches of 64 or more: a smaller batch times
    higher per-image costs; 0 skips the timing); ``device``: ``"cpu"`` or ``"cuda"``, the device the
    run will use (default: the config's, on this machine)."""
    d, t = config.data, config.trainer
    world = _world_size(config)
    gb = d.batch_size * world
    channels = d.channels or 3
    shape = (channels, d.image_size, d.image_size)
    here = torch.device("cuda" if torch.cuda.is_available() and t.accelerator in ("auto", "gpu", "cuda") else "cpu")
    device = torch.device(device) if device is not None else here
    reps = _targets(config, shape, gb, here, timing_images)  # representations are timed on this machine
    gflop, params, act_per_image = _model_costs(config, shape)
    n, images_source = _dataset_size(config, images, name)
    # the online probe's held-out images do not train (split per class: rounded like build_data)
    n_train = n - int(round(n * d.val_fraction)) if d.val_fraction and config.probe.enabled else n
    batches = n_train // gb
    if batches == 0:
        raise ConfigError(f"data.batch_size: a global batch of {gb} is larger than the {n} training images")
    total = min(batches * t.max_epochs, t.max_steps * t.accumulate_grad_batches if t.max_steps > 0 else math.inf)
    embed_dim = int(config.model.projector.split("-")[-1]) if config.model.projector else 0
    dcor = sum(r.dcor_gflop for r in reps) + 2 * 2 * gb**2 * embed_dim / 1e9  # the views' two Gram matrices
    live_projection = sum(r.raw_dim * r.dim * 4 for r in reps if r.source == "live" and r.dim != r.raw_dim)
    memory = {
        "weights, gradients, optimiser state": params * 4 * (2 + _OPTIMIZER_STATES[config.optim.optimizer]),
        "saved activations (both views)": act_per_image * d.batch_size * 2,
        "targets (global batch, float32)": sum(r.batch_bytes for r in reps),
        "distance matrices (global batch, on every rank)": (len(reps) + 2) * 3 * gb * gb * 4,
        "live projection matrices": live_projection,
    }
    if device.type == "cpu":  # the process itself: Python, torch, the libraries (a GPU's memory starts empty)
        memory["process baseline (measured)"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    cached = [r for r in reps if r.source.startswith("cache")]
    plan = Plan(
        config=name or config.name,
        method=config.method,
        device=str(device),
        world_size=world,
        batch_size=d.batch_size,
        global_batch=gb,
        image_size=d.image_size,
        images=n,
        train_images=n_train,
        images_source=images_source,
        representations=reps,
        encoder_gflop_per_image=gflop,
        encoder_tflop_per_step=gflop * d.batch_size * 2 / 1e3,
        dcor_gflop_per_step=dcor,
        memory_bytes=memory,
        batches_per_epoch=batches,
        total_batches=int(total),
        cache_bytes=sum(r.disk_bytes_per_image for r in cached) * n,
        cache_build_seconds=(
            (sum(r.seconds_per_image or 0.0 for r in cached) * n / world) if cached and timing_images else None
        ),
    )
    if measure_steps:
        timed = time_steps(replace(config, trainer=replace(t, progress_bar=False)), steps=measure_steps)
        plan.step_seconds, plan.step_source = timed["seconds"], f"measured here: median of {measure_steps} steps"
        plan.measured = {
            "step_seconds": timed["all"],
            "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        if torch.cuda.is_available():
            plan.measured["peak_cuda_bytes"] = torch.cuda.max_memory_allocated()
    elif throughput:
        plan.step_seconds, plan.step_source = d.batch_size / throughput, f"given: {throughput:g} images/s per process"
    if plan.step_seconds:
        plan.wall_seconds = plan.total_batches * plan.step_seconds + (plan.cache_build_seconds or 0.0)
        plan.decode_images_per_second = d.batch_size / plan.step_seconds
    return plan


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _duration(s: float | None) -> str:
    if s is None:
        return "—"
    return (
        f"{s:.1f} s"
        if s < 120
        else f"{s / 60:.1f} min"
        if s < 7200
        else f"{s / 3600:.1f} h"
        if s < 172800
        else f"{s / 86400:.1f} days"
    )


def format_plan(p: Plan) -> str:
    """The plan as Markdown tables (one step, then the whole run)."""
    lines = [
        f"## Plan: {p.config} ({p.method}), {p.world_size} process(es) x batch {p.batch_size} = global batch "
        f"{p.global_batch}, {p.image_size} px, on {p.device}",
        "",
        "| representation | source | dim (raw -> loss) | bytes per global batch | cache bytes / image "
        "| dCor GFLOP | s / image here |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in p.representations:
        dims = f"{r.raw_dim:,}" + (f" -> {r.dim:,}" if r.dim != r.raw_dim else "")
        per = "—" if r.seconds_per_image is None else f"{r.seconds_per_image:.4f}"
        disk = _size(r.disk_bytes_per_image) if r.disk_bytes_per_image else "—"
        lines.append(
            f"| {r.name} | {r.source} | {dims} | {_size(r.batch_bytes)} | {disk} | {r.dcor_gflop:.2f} | {per} |"
        )
    lines += [
        "",
        "| per step | |",
        "|---|---:|",
        f"| encoder + projector, forward + backward | {p.encoder_gflop_per_image:.3f} GFLOP / image / view, "
        f"{p.encoder_tflop_per_step:.3f} TFLOP / step / process |",
        "| distance correlation (Gram matrices of the global batch, forward, on every rank) | "
        f"{p.dcor_gflop_per_step:.2f} GFLOP |",
    ]
    lines += [f"| memory: {k} | {_size(v)} |" for k, v in p.memory_bytes.items()]
    lines += [
        f"| **peak memory (estimate, per process)** | **{_size(p.peak_memory_bytes)}** |",
        f"| step time | {_duration(p.step_seconds)} ({p.step_source}) |",
        "| images the loader must decode | "
        + ("—" if p.decode_images_per_second is None else f"{p.decode_images_per_second:.0f} / s per process")
        + " |",
        "",
        "| whole run | |",
        "|---|---:|",
        f"| images (training / in the cache) | {p.train_images:,} / {p.images:,} ({p.images_source}) |",
        f"| batches (per process) | {p.batches_per_epoch:,} / epoch, {p.total_batches:,} in all |",
        f"| feature cache on disk | {_size(p.cache_bytes) if p.cache_bytes else 'none'} |",
        f"| cache build (all ranks) | {_duration(p.cache_build_seconds)} |",
        f"| **projected wall time** | **{_duration(p.wall_seconds)}** |",
    ]
    if p.measured:
        lines.append(f"| measured here: peak RSS | {_size(p.measured['peak_rss_bytes'])} |")
    return "\n".join(lines) + "\n"
