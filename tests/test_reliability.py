"""The faults of a long run, injected for real: preemption signals, kill -9, torn checkpoints, a
corrupt feature cache, a full disk and a bad batch (docs/reliability.md lists them, one row each).

Every test checks the three things the issue asks of a fault: what the user sees (a message that
names the file, the step or the limit), that no more than the work since the last checkpoint is
lost (a resume ends with the weights of an uninterrupted run), and that no partial file is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from mvmr.cache import CacheMismatchError, CorruptCacheError, FeatureCache, build_cache, open_or_build
from mvmr.errors import CheckpointError, DiskFullError, Preempted
from mvmr.training.callbacks import AtomicCheckpointIO, NonFiniteLossError
from mvmr.training.resume import find_resume_checkpoint
from mvmr.training.trainer import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from _faults import FullDisk, leftovers  # noqa: E402
from _training_support import (  # noqa: E402
    DETERMINISTIC_REPS,
    FEATURE_DIM,
    tiny_config,
    tiny_model,
)
from _training_support import (
    run_metrics as _metrics,
)

REPO = Path(__file__).resolve().parents[1]
FAULTS_SCRIPT = Path(__file__).with_name("_faults.py")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="signals and /proc/self/fd: Linux")


def _state(run_dir: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / name, map_location="cpu", weights_only=True)["state_dict"]


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.fixture(scope="module")
def reference(cifar10_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run of the tiny config: 32 training images, batch 8, 2 epochs = 8 steps."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return pretrain(tiny_config(cifar10_root, out), model=tiny_model(), feature_dim=FEATURE_DIM)


# --------------------------------------------------------------------------------------------
# preemption: SIGTERM, SLURM's SIGUSR1 (requeue), and kill -9, on a real subprocess run
# --------------------------------------------------------------------------------------------
def _run_until_signal(
    cifar10_root: Path,
    run_dir: Path,
    sig: int,
    *,
    at: int,
    overrides: list[str],
    env: dict[str, str] | None = None,
    whole_group: bool = False,
) -> subprocess.CompletedProcess:
    """Start a run in a subprocess, send ``sig`` when optimiser step ``at`` is about to start."""
    ready = run_dir.parent / f"{run_dir.name}.ready"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "LOCAL_RANK", "RANK", "WORLD_SIZE"))}
    full_env.update(PYTHONPATH=str(REPO), **(env or {}))  # same threads as this process: same float noise
    proc = subprocess.Popen(
        [sys.executable, str(FAULTS_SCRIPT), str(cifar10_root), str(run_dir), str(ready), str(at), *overrides],
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out, err = proc.communicate(timeout=30)
                pytest.fail(f"the run ended (or hung) before step {at}: rc={proc.returncode}\n{err[-3000:]}")
            time.sleep(0.05)
        if whole_group:  # as SLURM and `kill -TERM -PGID` do: the main process and its DataLoader workers
            os.killpg(proc.pid, sig)
        else:
            os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_sigterm_mid_epoch_checkpoints_exits_and_resumes_to_the_same_weights(
    cifar10_root: Path, tmp_path: Path, reference: Path
) -> None:
    # no periodic mid-epoch checkpoint: the one at step 6 can only come from the SIGTERM handling;
    # a DataLoader worker receives the signal too (sent to the process group, as SLURM does)
    run = tmp_path / "run"
    proc = _run_until_signal(
        cifar10_root, run, signal.SIGTERM, at=5, overrides=["data.num_workers=1"], whole_group=True
    )
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "received SIGTERM: stopped at optimiser step 6" in proc.stderr and "last.ckpt" in proc.stderr
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6  # the step the signal landed in was finished, then saved: mid epoch 2
    assert leftovers(tmp_path) == []

    pretrain(tiny_config(cifar10_root, run), model=tiny_model(seed=123), feature_dim=FEATURE_DIM)  # --resume auto
    _assert_same_weights(_state(reference), _state(run))
    steps = sorted({int(r["step"]) for r in _metrics(run) if r.get("train/loss")})
    assert steps == sorted({int(r["step"]) for r in _metrics(reference) if r.get("train/loss")})  # none twice


def test_kill_9_mid_epoch_resumes_to_the_same_weights(cifar10_root: Path, tmp_path: Path, reference: Path) -> None:
    # SIGKILL cannot be handled: the run loses the work since its last checkpoint (every step here)
    run = tmp_path / "run"
    over = ["trainer.checkpoint_every_n_steps=1"]
    proc = _run_until_signal(cifar10_root, run, signal.SIGKILL, at=5, overrides=over)
    assert proc.returncode == -signal.SIGKILL
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    assert leftovers(tmp_path) == []
    pretrain(tiny_config(cifar10_root, run, over), model=tiny_model(seed=123), feature_dim=FEATURE_DIM)
    _assert_same_weights(_state(reference), _state(run))


class _SendSignal(L.Callback):
    """Send ``sig`` to this very process (a real signal, through the kernel) when step ``at`` starts."""

    def __init__(self, sig: int, at: int) -> None:
        self.sig, self.at, self.sent = sig, at, False

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if not self.sent and trainer.global_step == self.at:
            self.sent = True
            os.kill(os.getpid(), self.sig)


SLURM_VARS = dict(
    SLURM_NTASKS="1",
    SLURM_NTASKS_PER_NODE="1",
    SLURM_JOB_ID="4242",
    SLURM_JOB_NAME="mvmr-pretrain",
    SLURM_PROCID="0",
    SLURM_LOCALID="0",
    SLURM_NODEID="0",
    SLURM_NODELIST="localhost",
)


def test_sigusr1_under_slurm_checkpoints_and_requeues_through_lightning(
    cifar10_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SLURM's warning signal: last.ckpt, then Lightning's SLURM environment requeues the job
    (``scontrol requeue <job id>``, here a stand-in on PATH that records its arguments), then a
    clean exit (Preempted: SystemExit(128 + SIGUSR1))."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    for key, value in SLURM_VARS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    run = tmp_path / "run"
    config = tiny_config(cifar10_root, run, ["trainer.max_epochs=1", "probe.enabled=false"])
    before, before_term = signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGTERM)
    with pytest.raises(Preempted) as info, pytest.warns(UserWarning, match="received SIGUSR1"):
        pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[_SendSignal(signal.SIGUSR1, at=1)])
    assert info.value.code == 128 + signal.SIGUSR1 and info.value.step == 2
    assert "the SLURM job was requeued" in str(info.value) and str(run / "checkpoints" / "last.ckpt") in str(info.value)
    assert calls.read_text().split() == ["requeue", "4242"]
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert not list(run.glob("hpc_ckpt_*.ckpt"))  # last.ckpt stays the one resume point
    assert signal.getsignal(signal.SIGUSR1) is before and signal.getsignal(signal.SIGTERM) is before_term  # restored
    assert leftovers(tmp_path) == []


def test_slurm_environment_is_configured_to_requeue_on_sigusr1(
    cifar10_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lightning.fabric.plugins.environments import SLURMEnvironment

    from mvmr.training.trainer import build_trainer

    config = tiny_config(cifar10_root, tmp_path / "run")
    env = build_trainer(config, tmp_path / "run")._accelerator_connector.cluster_environment
    assert not isinstance(env, SLURMEnvironment)
    for key, value in dict(
        SLURM_NTASKS="1",
        SLURM_JOB_ID="7",
        SLURM_JOB_NAME="train",
        SLURM_PROCID="0",
        SLURM_LOCALID="0",
        SLURM_NODEID="0",
    ).items():
        monkeypatch.setenv(key, value)
    env = build_trainer(config, tmp_path / "run")._accelerator_connector.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue and env.requeue_signal == signal.SIGUSR1


# --------------------------------------------------------------------------------------------
# a torn or corrupt checkpoint
# --------------------------------------------------------------------------------------------
def test_torn_last_checkpoint_falls_back_to_the_newest_readable_one(
    cifar10_root: Path, tmp_path: Path, reference: Path
) -> None:
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch0000.ckpt", "epoch0001.ckpt", "last.ckpt"]
    data = (ckpts / "last.ckpt").read_bytes()
    (ckpts / "last.ckpt").write_bytes(data[: len(data) // 2])  # cut off half-written
    (ckpts / "epoch0001.ckpt").write_text("not a checkpoint at all\n")
    with pytest.warns(
        UserWarning,
        match=r"resuming from .*epoch0000.ckpt \(epoch 0, step 4\).*last.ckpt skipped: "
        r".*epoch0001.ckpt skipped: ",
    ):
        assert find_resume_checkpoint(run, "auto") == str(ckpts / "epoch0000.ckpt")
    with pytest.warns(UserWarning, match="epoch0000.ckpt"):
        pretrain(tiny_config(cifar10_root, run), model=tiny_model(seed=123), feature_dim=FEATURE_DIM)
    _assert_same_weights(_state(reference), _state(run))  # lost only the epoch after epoch0000.ckpt
    assert leftovers(tmp_path) == []


def test_no_readable_checkpoint_stops_naming_every_file(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "last.ckpt").write_bytes(b"PK\x03\x04 torn")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, ckpts / "epoch0003.ckpt")  # weights, no training state
    (ckpts / "epoch0001.ckpt").write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        find_resume_checkpoint(tmp_path / "run", "auto")
    message = str(info.value)
    assert all(str(ckpts / name) in message for name in ("last.ckpt", "epoch0003.ckpt", "epoch0001.ckpt"))
    assert message.index("last.ckpt") < message.index("epoch0003") < message.index("epoch0001")
    assert "no training state" in message and "--resume none" in message
    from mvmr.cli import main

    args = ["pretrain", "--config", "cifar10", "--out", str(tmp_path / "run"), "trainer.accelerator=cpu"]
    assert main(args) == 2  # the run never starts afresh over its checkpoints on its own
    assert "no checkpoint in" in capsys.readouterr().err
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch0001.ckpt", "epoch0003.ckpt", "last.ckpt"]


# --------------------------------------------------------------------------------------------
# a torn or corrupt feature cache
# --------------------------------------------------------------------------------------------
def _images(n: int = 20, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _cache(root: Path, images: torch.Tensor, *, opener=build_cache, **kwargs):
    from torch.utils.data import TensorDataset

    from mvmr.representations import build as build_representation

    return opener(
        root,
        dataset=TensorDataset(images),
        representations=[build_representation("pixels")],
        image_size=8,
        batch_size=4,
        progress=False,
        fingerprint="fp-reliability",
        **kwargs,
    )


def test_cache_file_cut_short_or_extended_is_found_when_opened_and_rebuilt(tmp_path: Path) -> None:
    images, root = _images(), tmp_path / "c"
    cache = _cache(root, images)
    path = root / cache.manifest["representations"][0]["file"]
    good = path.read_bytes()
    for damaged, how in ((good[: len(good) - 100], "cut short"), (good + b"\0" * 64, "longer than written")):
        path.write_bytes(damaged)
        with pytest.raises(CorruptCacheError, match=f"{path}.*{how}.*rebuild"):
            FeatureCache.open(root)
        with pytest.warns(UserWarning, match=f"rebuilding the damaged feature cache at {root}: .*{how}"):
            rebuilt = _cache(root, images, opener=open_or_build)
        assert path.read_bytes() == good  # rebuilt, never read as it was
        torch.testing.assert_close(rebuilt.get(range(20))["pixels"], images.flatten(1), atol=1e-3, rtol=1e-3)
    assert leftovers(tmp_path) == []


def test_flipped_bytes_are_found_when_their_chunk_is_read_naming_file_and_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mvmr.cache import integrity

    monkeypatch.setattr(integrity, "CHUNK_BYTES", 1024)  # 2 rows of 192 float16 values a chunk: 10 chunks
    images, root = _images(), tmp_path / "c"
    built = _cache(root, images)
    name = built.manifest["representations"][0]["file"]
    entry = built.manifest["integrity"][name]
    assert entry["rows_per_chunk"] == 2 and len(entry["crc32"]) == 10
    path = root / name
    data = bytearray(path.read_bytes())
    data[entry["header_bytes"] + 7 * 384 + 5] ^= 0x10  # one bit of row 7, in chunk 3
    path.write_bytes(bytes(data))

    cache = FeatureCache.open(root)  # size and header are right: it opens
    torch.testing.assert_close(cache.get([0, 1, 19])["pixels"], images[[0, 1, 19]].flatten(1), atol=1e-3, rtol=1e-3)
    for _ in range(2):  # a damaged chunk is never marked as checked: every read of it fails
        with pytest.raises(CorruptCacheError, match=rf"{path}: chunk 3 \(rows 6-7\) fails its crc32 checksum.*Rebuild"):
            cache.get([2, 6])
    with pytest.raises(CorruptCacheError, match="chunk 3"):
        FeatureCache.open(root).verify_all()
    data[20] ^= 0x01  # a byte of the .npy header: found when the file is opened
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptCacheError, match=f"{path}: its .npy header fails its checksum"):
        FeatureCache.open(root)


def test_corrupt_cache_stops_training_with_a_message_to_rebuild(
    cifar10_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mvmr.cli import main
    from mvmr.config import save_config

    cache_dir = tmp_path / "cache"
    config = tiny_config(
        cifar10_root,
        tmp_path / "run",
        [f"representations.items={DETERMINISTIC_REPS}", f"representations.cache_dir={cache_dir}"],
    )
    assert main(["cache", "--config", str(save_config(config, tmp_path / "config.yaml"))]) == 0
    manifest = json.loads((cache_dir / "manifest.json").read_text())
    name, entry = next(iter(manifest["integrity"].items()))
    data = bytearray((cache_dir / name).read_bytes())
    data[entry["header_bytes"] + 1000] ^= 0x04  # one bit, in the rows
    (cache_dir / name).write_bytes(bytes(data))
    with pytest.raises(
        CorruptCacheError,
        match=rf"{cache_dir / name}: chunk 0 .* fails its crc32 checksum.*no row of "
        r"it is used. Rebuild the cache: `mvmr cache` with the run's config",
    ):
        pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()  # no step trained on damaged rows
    capsys.readouterr()
    with pytest.warns(
        UserWarning, match=f"rebuilding the damaged feature cache at {cache_dir}: .*chunk 0"
    ):  # the fix the message names
        assert main(["cache", "--config", str(tmp_path / "config.yaml")]) == 0
    assert "(built)" in capsys.readouterr().out
    pretrain(config, model=tiny_model(), feature_dim=FEATURE_DIM, trainer_overrides={"max_steps": 1})


def test_old_format_cache_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    images, root = _images(), tmp_path / "c"
    _cache(root, images)
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["version"] = 1
    del manifest["integrity"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(
        CacheMismatchError,
        match=r"'version' differs: cached=1, current=2 \(an older mvmr wrote it, "
        r"without the per-chunk checksums.*rebuild it \(`mvmr cache --rebuild`",
    ):
        FeatureCache.open(root)
    with pytest.raises(CacheMismatchError, match="version"):
        _cache(root, images, opener=open_or_build)
    assert _cache(root, images, opener=open_or_build, rebuild=True).manifest["version"] == 2


# --------------------------------------------------------------------------------------------
# a full disk (ENOSPC from the low-level writes)
# --------------------------------------------------------------------------------------------
def test_full_disk_checkpoint_write_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    io_ = AtomicCheckpointIO()
    path = tmp_path / "ckpts" / "last.ckpt"
    io_.save_checkpoint({"w": torch.zeros(10)}, path)
    before = path.read_bytes()
    disk = FullDisk(monkeypatch, tmp_path, free=1000)  # less than the new checkpoint: a short write, then ENOSPC
    with pytest.raises(DiskFullError) as info:
        io_.save_checkpoint({"w": torch.ones(100_000)}, path)
    err = info.value
    assert disk.failures == 1 and err.path == str(path) and err.needed > 400_000
    assert str(err).startswith(f"cannot write checkpoint {path}: No space left on device; it needs ")
    assert f"({err.needed} bytes)" in str(err) and "free there" in str(err)
    assert path.read_bytes() == before and leftovers(tmp_path) == []


def test_full_disk_during_training_stops_naming_the_checkpoint_then_resumes(
    cifar10_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: Path
) -> None:
    run = tmp_path / "run"
    disk = FullDisk(monkeypatch, run, free=None)

    class FillTheDisk(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module) -> None:
            if trainer.current_epoch == 1:
                disk.free = 0

    with pytest.raises(
        DiskFullError,
        match=rf"cannot write checkpoint {run}/checkpoints/\S+\.ckpt: No space left on "
        rf"device; it needs .* bytes\)",
    ):
        pretrain(tiny_config(cifar10_root, run), model=tiny_model(), feature_dim=FEATURE_DIM, callbacks=[FillTheDisk()])
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.iterdir()) == ["epoch0000.ckpt", "last.ckpt"] and leftovers(run) == []
    assert torch.load(ckpts / "last.ckpt", weights_only=True)["global_step"] == 4  # epoch 0, intact
    disk.free = None  # space freed: resume
    pretrain(tiny_config(cifar10_root, run), model=tiny_model(seed=123), feature_dim=FEATURE_DIM)
    _assert_same_weights(_state(reference), _state(run))


@pytest.mark.parametrize("where", ["free-space check", "posix_fallocate", "row writes"])
def test_full_disk_cache_build_keeps_the_previous_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    root = tmp_path / "c"
    old = _cache(root, _images(seed=0))
    before = {p.name: p.read_bytes() for p in root.iterdir()}
    disk = FullDisk(
        monkeypatch, tmp_path, free=2000, fallocate=where != "row writes", report_free=where == "free-space check"
    )
    with pytest.raises(
        DiskFullError,
        match=rf"cannot write feature cache (file )?{root}(/\S+)?: No space left on "
        rf"device; it needs .* bytes\)",
    ):
        _cache(root, _images(seed=1), overwrite=True)  # a rebuild over the old cache
    assert disk.failures == (0 if where == "free-space check" else 1)
    assert {p.name: p.read_bytes() for p in root.iterdir()} == before  # the old cache, untouched
    assert FeatureCache.open(root).manifest["build_id"] == old.manifest["build_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c"]  # no temporary folder left


def test_full_disk_export_keeps_the_previous_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mvmr.models import save_backbone

    out, model = tmp_path / "export", tiny_model()
    meta = {"encoder": "tiny", "small_images": False, "in_chans": 3, "feature_dim": FEATURE_DIM}
    for fmt in ("safetensors", "pt"):
        save_backbone(model, out / f"backbone.{fmt}", format=fmt, metadata=meta)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # a newer model to export over the old files
    FullDisk(monkeypatch, out, free=1000)
    for fmt in ("safetensors", "pt"):
        with pytest.raises(
            DiskFullError,
            match=rf"cannot write file {out}/backbone.{fmt}: No space left on device; "
            rf"it needs .* bytes\), .* free there",
        ):
            save_backbone(model, out / f"backbone.{fmt}", format=fmt, metadata=meta)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and leftovers(out) == []


# --------------------------------------------------------------------------------------------
# a bad batch: a dataset that yields one NaN image
# --------------------------------------------------------------------------------------------
class _OneNanImage:
    """A dataset whose item ``bad`` is an image of NaNs; everything else is ``dataset``'s."""

    def __init__(self, dataset, bad: int) -> None:
        self.dataset, self.bad = dataset, bad

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        item = self.dataset[index]
        if index == self.bad:
            item = (torch.full_like(item[0], float("nan")), *item[1:])
        return item

    def with_size(self, size: int) -> _OneNanImage:
        return _OneNanImage(self.dataset.with_size(size), self.bad)

    def __getattr__(self, name: str):
        return getattr(self.__dict__["dataset"], name)


class _Unchanged(L.Callback):
    """Check that a batch holding dataset index ``bad`` changes no weight and no buffer."""

    def __init__(self, bad: int) -> None:
        self.bad, self.checked = bad, 0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.before = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.bad in batch[2].tolist():
            for key, value in pl_module.state_dict().items():
                torch.testing.assert_close(value, self.before[key], rtol=0, atol=0, msg=key)
            self.checked += 1


def test_nan_image_is_skipped_up_to_the_limit_then_stops(
    cifar10_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mvmr.training.build as build_module

    data = build_module.build_data(tiny_config(cifar10_root, tmp_path / "probe"))
    position = int(data.train_indices[5])  # a training image: in one batch of each epoch
    real = build_module.build_dataset
    monkeypatch.setattr(
        build_module, "build_dataset", lambda *a, **k: _OneNanImage(real(*a, **k), int(data.base.indices[position]))
    )

    # limit 2: the NaN batch of each epoch is skipped, counted and logged; the run completes
    unchanged = _Unchanged(position)
    run = tmp_path / "skip"
    with pytest.warns(
        UserWarning,
        match=rf"skipped a non-finite batch at optimiser step \d \(epoch 0, batch \d\); "
        rf"dataset indices with NaN/inf in their images: \[{position}\] \(1 of at most "
        rf"2, trainer.skip_nonfinite_batches\)",
    ) as record:
        pretrain(
            tiny_config(cifar10_root, run, ["trainer.skip_nonfinite_batches=2"]),
            model=tiny_model(),
            feature_dim=FEATURE_DIM,
            callbacks=[unchanged],
        )
    assert sum("skipped a non-finite batch" in str(w.message) for w in record) == 2 and unchanged.checked == 2
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 8 and last["mvmr_skipped_nonfinite_batches"] == 2
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())  # BatchNorm statistics included
    counts = [float(r["train/skipped_nonfinite"]) for r in _metrics(run) if r.get("train/skipped_nonfinite")]
    assert counts and max(counts) == 2 and counts == sorted(counts)

    # limit 1: the second NaN batch stops the run as a limit of 0 stops the first
    with pytest.raises(
        NonFiniteLossError,
        match=rf"epoch 1.*\[{position}\]; 1 bad batch\(es\) were skipped already, "
        rf"the limit trainer.skip_nonfinite_batches=1",
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pretrain(
                tiny_config(cifar10_root, tmp_path / "one", ["trainer.skip_nonfinite_batches=1"]),
                model=tiny_model(),
                feature_dim=FEATURE_DIM,
            )
    assert all(torch.isfinite(v).all() for v in _state(tmp_path / "one").values())

    # limit 0 (the default): stops at the first, with the step, as before this option existed
    with pytest.raises(NonFiniteLossError, match=r"non-finite values at optimiser step \d \(epoch 0"):
        pretrain(tiny_config(cifar10_root, tmp_path / "zero"), model=tiny_model(), feature_dim=FEATURE_DIM)


# --------------------------------------------------------------------------------------------
# the fault table
# --------------------------------------------------------------------------------------------
def test_every_test_the_fault_table_names_exists() -> None:
    import re

    table = (REPO / "docs" / "reliability.md").read_text()
    named = sorted(set(re.findall(r"(tests/test_\w+\.py)::(\w+)", table)))
    assert len(named) >= 25
    for path, name in named:
        assert re.search(rf"^def {name}\(", (REPO / path).read_text(), re.M), f"{path}::{name} is not a test"
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    assert all("tests/test_" in row for row in rows), "every fault row names the test that injects it"
