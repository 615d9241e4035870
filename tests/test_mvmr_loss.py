"""MVMRLoss: hand-computed values per preset, options, descent, collapse, and the distributed gather."""

from __future__ import annotations

import os
import socket

import dcor
import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import mvmr.losses.mvmr_loss as loss_module
from mvmr.losses import PAPER, REFERENCE_CODE, MVMRLoss


def _tiny(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(6, 4, dtype=torch.float64, generator=g)
    z_aug = z + 0.5 * torch.randn(6, 4, dtype=torch.float64, generator=g)
    reps = {
        "pixels": torch.rand(6, 3, 2, 2, dtype=torch.float64, generator=g),
        "hog": torch.rand(6, 5, dtype=torch.float64, generator=g),
    }
    return z, z_aug, reps


def _by_hand(z, z_aug, reps, *, lambda_, mu, alpha, beta, gamma, eps, l3, squared, mse):
    """The paper's equations in numpy, with dcor as the distance-correlation oracle."""
    z, za = z.numpy(), z_aug.numpy()
    d = ((z - za) ** 2).sum(1).mean() if mse == "sum" else ((z - za) ** 2).mean()

    def v(a):
        return np.maximum(0.0, gamma - np.sqrt(a.var(axis=0, ddof=1) + eps)).mean()

    cor = dcor.distance_correlation_sqr if squared else dcor.distance_correlation
    total = lambda_ * d + mu * (v(z) + v(za)) + alpha * (1 - cor(za, z))
    for name, rep in reps.items():
        c = cor(za, rep.reshape(len(rep), -1).numpy())
        total += beta[name] * ((1 - c) if l3 == "maximize" else c)
    return total


@pytest.mark.parametrize("preset", [PAPER, REFERENCE_CODE, {"l3": "maximize", "squared": True, "mse": "sum"}])
def test_presets_match_hand_computed_value(preset):
    z, z_aug, reps = _tiny()
    weights = dict(lambda_=2.0, mu=3.0, alpha=0.5, gamma=1.0, eps=1e-4)
    beta = {"pixels": 0.7, "hog": 1.3}
    expected = _by_hand(z, z_aug, reps, beta=beta, **weights, **preset)
    loss, terms = MVMRLoss(beta=beta, **weights, **preset)(z, z_aug, reps)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert terms["loss"].item() == pytest.approx(expected, rel=1e-9)


def test_terms_are_complete_and_consistent():
    z, z_aug, reps = _tiny()
    loss, t = MVMRLoss(lambda_=2.0, mu=3.0, alpha=0.5, beta=1.5)(z, z_aug, reps)
    assert list(t) == ["mse", "var_z", "var_z_aug", "l1", "dcor_views", "dcor/pixels", "dcor/hog", "l2", "l3", "loss"]
    assert all(not v.requires_grad for v in t.values())
    assert t["l1"].item() == pytest.approx(2.0 * t["mse"].item() + 3.0 * (t["var_z"] + t["var_z_aug"]).item())
    assert t["l2"].item() == pytest.approx(0.5 * (1 - t["dcor_views"].item()))
    assert t["l3"].item() == pytest.approx(1.5 * (2 - t["dcor/pixels"].item() - t["dcor/hog"].item()))
    assert loss.item() == pytest.approx((t["l1"] + t["l2"] + t["l3"]).item())


def test_options_change_what_they_say():
    z, z_aug, reps = _tiny()
    _, paper = MVMRLoss()(z, z_aug, reps)
    _, root = MVMRLoss(squared=False)(z, z_aug, reps)
    assert root["dcor/hog"].item() == pytest.approx(paper["dcor/hog"].item() ** 0.5)
    _, summed = MVMRLoss(mse="sum")(z, z_aug, reps)
    assert summed["mse"].item() == pytest.approx(z.shape[1] * paper["mse"].item())
    _, minimised = MVMRLoss(l3="minimize")(z, z_aug, reps)
    assert minimised["l3"].item() == pytest.approx(paper["dcor/pixels"].item() + paper["dcor/hog"].item())
    # The sign of L3's gradient flips between the two modes.
    za = z_aug.clone().requires_grad_(True)
    MVMRLoss(lambda_=0, mu=0, alpha=0)(z, za, reps)[0].backward()
    g_max = za.grad.clone()
    za.grad = None
    MVMRLoss(lambda_=0, mu=0, alpha=0, l3="minimize")(z, za, reps)[0].backward()
    assert torch.allclose(za.grad, -g_max)


def test_zaug_distance_matrix_is_computed_once(monkeypatch):
    calls = []
    real = loss_module.double_centered_distances
    monkeypatch.setattr(
        loss_module, "double_centered_distances", lambda x, name="x": calls.append(name) or real(x, name=name)
    )
    z, z_aug, reps = _tiny()
    MVMRLoss()(z, z_aug, reps)
    assert calls.count("z_aug") == 1
    assert len(calls) == 2 + len(reps)


def test_descent_on_free_embeddings():
    g = torch.Generator().manual_seed(0)
    z = torch.randn(32, 16, generator=g, requires_grad=True)
    z_aug = torch.randn(32, 16, generator=g, requires_grad=True)
    reps = {"target": torch.randn(32, 50, generator=g) ** 2}
    loss_fn = MVMRLoss()
    opt = torch.optim.Adam([z, z_aug], lr=0.05)
    first = loss_fn(z, z_aug, reps)[0].item()
    for _ in range(30):
        opt.zero_grad()
        loss, terms = loss_fn(z, z_aug, reps)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    assert terms["dcor/target"] > 0.5


def test_collapse_gives_high_finite_loss():
    z = torch.ones(16, 8, requires_grad=True)
    loss, t = MVMRLoss(beta=1.0)(z, z, {"pixels": torch.rand(16, 12)})
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()
    # every term is at its worst: variance hinge ~ gamma for both views, dCor = 0
    assert t["var_z"].item() == pytest.approx(1 - 1e-2, rel=1e-4)
    assert t["dcor_views"].item() == 0.0 and t["dcor/pixels"].item() == 0.0
    assert loss.item() == pytest.approx(2 * 0.99 + 1 + 1, rel=1e-4)


def test_autocast_inputs_give_float32_loss():
    z, z_aug = torch.randn(8, 4).bfloat16(), torch.randn(8, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = MVMRLoss()(z, z_aug, {"p": torch.rand(8, 9).half()})
    assert loss.dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs,call,match",
    [
        ({"l3": "maximise"}, None, "l3 must be"),
        ({"mse": "median"}, None, "mse must be"),
        ({"mu": -1.0}, None, "mu must be"),
        ({}, "batch1", "at least 2"),
        ({}, "shape", "same shape"),
        ({}, "rep_batch", "batch size"),
        ({"beta": {"hog": 1.0}}, "missing_weight", "no beta weight"),
        ({"beta": {"hog": 1.0, "pixel": 1.0}}, "unused_weight", "not passed"),
        ({}, "nan", "non-finite"),
    ],
)
def test_bad_input(kwargs, call, match):
    with pytest.raises(ValueError, match=match):
        loss = MVMRLoss(**kwargs)
        z = torch.randn(4, 3)
        if call == "batch1":
            loss(z[:1], z[:1])
        elif call == "shape":
            loss(z, torch.randn(4, 5))
        elif call == "rep_batch":
            loss(z, z, {"hog": torch.randn(3, 2)})
        elif call == "missing_weight":
            loss(z, z, {"hog": torch.randn(4, 2), "lsd": torch.randn(4, 2)})
        elif call == "unused_weight":
            loss(z, z, {"hog": torch.randn(4, 2)})
        elif call == "nan":
            loss(z, z, {"hog": torch.tensor([[1.0], [float("nan")], [0.0], [2.0]])})


# ---------------------------------------------------------------- distributed (real gloo group)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _global_problem(sizes):
    g = torch.Generator().manual_seed(0)
    n = sum(sizes)
    model = torch.nn.Sequential(torch.nn.Linear(10, 16), torch.nn.Tanh(), torch.nn.Linear(16, 8))
    for p in model.parameters():
        torch.nn.init.normal_(p, generator=g)
    x = torch.randn(n, 10, generator=g)
    x_aug = x + 0.3 * torch.randn(n, 10, generator=g)
    reps = {"pixels": torch.randn(n, 5, generator=g) ** 2, "hog": torch.rand(n, 7, generator=g)}
    return model, x, x_aug, reps


def _worker(rank: int, world: int, port: int, sizes, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.manual_seed(0)
        model, x, x_aug, reps = _global_problem(sizes)
        lo, hi = sum(sizes[:rank]), sum(sizes[: rank + 1])
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        loss, terms = MVMRLoss(gather_distributed=True)(
            ddp(x[lo:hi]), ddp(x_aug[lo:hi]), {k: v[lo:hi] for k, v in reps.items()}
        )
        loss.backward()
        # numpy arrays travel by value; shared-memory tensors would die with this process
        queue.put((rank, loss.item(), [p.grad.numpy().copy() for p in model.parameters()]))
        dist.barrier()  # no rank tears gloo down while the other still has work in flight
    finally:
        dist.destroy_process_group()


def _two_ranks(worker, *args) -> list:
    """``worker(rank, 2, port, *args, queue)`` in two spawned processes of a gloo group; what each put
    on the queue, ``(rank, loss, grads)``, once both have exited cleanly."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=worker, args=(r, 2, port, *args, queue)) for r in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    return results


@pytest.mark.parametrize("sizes", [(8, 8), (5, 3)], ids=["even", "uneven"])
def test_two_process_gather_equals_single_process(sizes):
    model, x, x_aug, reps = _global_problem(sizes)
    loss, _ = MVMRLoss()(model(x), model(x_aug), reps)
    loss.backward()
    expected = [p.grad for p in model.parameters()]

    for _, rank_loss, grads in _two_ranks(_worker, sizes):
        assert rank_loss == pytest.approx(loss.item(), rel=1e-5)
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-6)


def test_without_gather_the_per_rank_loss_differs():
    """The bug that the gather fixes: per-rank batch statistics are not the global ones."""
    model, x, x_aug, reps = _global_problem((8, 8))
    with torch.no_grad():
        full = MVMRLoss()(model(x), model(x_aug), reps)[0]
        half = MVMRLoss()(model(x[:8]), model(x_aug[:8]), {k: v[:8] for k, v in reps.items()})[0]
    assert abs(full.item() - half.item()) > 1e-3


# ------------------------------------------- the peers' losses under DDP (real gloo group, global batch)


def _peer_loss(method: str, gather: bool):
    """``loss(z_a, z_b) -> (scalar, terms)`` of a peer method; BYOL's predictions are z_a and z_b, its
    momentum targets their detached copies."""
    from mvmr.config import load_config
    from mvmr.methods import get_method

    config = load_config(
        None,
        [f"method={method}", "representations.items=[]", f"loss.gather_distributed={gather}", "model.projector=8-8"],
    )
    loss = get_method(method).from_config(config, model=torch.nn.Linear(2, 2), data=None, feature_dim=2).loss_fn
    if method == "byol":
        return lambda z_a, z_b: loss(z_a, z_b, z_a.detach(), z_b.detach())
    return loss


def _peer_worker(rank: int, world: int, port: int, sizes, method: str, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        model, x, x_aug, _ = _global_problem(sizes)
        lo, hi = sum(sizes[:rank]), sum(sizes[: rank + 1])
        ddp = torch.nn.parallel.DistributedDataParallel(model)
        loss, _ = _peer_loss(method, True)(ddp(x[lo:hi]), ddp(x_aug[lo:hi]))
        loss.backward()
        queue.put((rank, loss.item(), [p.grad.numpy().copy() for p in model.parameters()]))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("method", ["vicreg", "barlow_twins", "byol"])
def test_peer_methods_see_the_global_batch_under_ddp(method: str) -> None:
    """VICReg, Barlow Twins and BYOL (lightly's losses) on 2 processes of 5 and 3 images equal one process on
    the 8 (loss and gradients), as MV-MR does; per-rank statistics would not."""
    sizes = (5, 3)
    model, x, x_aug, _ = _global_problem(sizes)
    loss, _ = _peer_loss(method, False)(model(x), model(x_aug))
    loss.backward()
    expected = [p.grad for p in model.parameters()]
    with torch.no_grad():
        first_rank_alone = _peer_loss(method, False)(model(x[:5]), model(x_aug[:5]))[0]
    assert abs(first_rank_alone.item() - loss.item()) > 1e-3 * abs(loss.item())

    for _, rank_loss, grads in _two_ranks(_peer_worker, sizes, method):
        assert rank_loss == pytest.approx(loss.item(), rel=1e-5)
        for got, want in zip(grads, expected, strict=True):
            torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-5)


def test_a_peer_loss_refuses_its_own_gather_flag() -> None:
    from mvmr.config import load_config
    from mvmr.errors import ConfigError
    from mvmr.methods.lightly_methods import lightly_loss

    config = load_config(
        None, ["method=vicreg", "representations.items=[]", "method_kwargs={gather_distributed: true}"]
    )
    with pytest.raises(ConfigError, match="method_kwargs.gather_distributed: set loss.gather_distributed instead"):
        lightly_loss("VICRegLoss", config)
