"""distance_correlation against the dcor package (float64 oracle), plus its invariances and numerics."""

from __future__ import annotations

import dcor
import numpy as np
import pytest
import torch

from mvmr.losses import distance_correlation, distance_covariance

# (B, Dx, Dy): B from 2 to 512, D from 1 to 50,000. dcor's reference implementation builds a
# (B, B, D) array, so the largest cells keep B*B*D moderate.
GRID = [
    (2, 1, 1),
    (2, 50_000, 3),
    (3, 1, 7),
    (16, 50_000, 10),
    (64, 1, 1),
    (64, 300, 2000),
    (128, 1000, 1),
    (256, 64, 8),
    (512, 16, 1),
]


def _structured(rng: np.random.Generator, b: int, dx: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """y depends non-linearly on x, plus a duplicate row and a rank-deficient direction."""
    x = rng.standard_normal((b, dx))
    w = rng.standard_normal((dx, dy)) / np.sqrt(dx)
    y = np.tanh(x @ w) ** 2 + 0.1 * rng.standard_normal((b, dy))
    if b > 3:
        x[1] = x[0]
        y[1] = y[0]
    return x, y


@pytest.mark.parametrize("b,dx,dy", GRID)
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_matches_dcor_float64(b, dx, dy, kind):
    rng = np.random.default_rng(b * 7 + dx + dy)
    if kind == "random":
        x, y = rng.standard_normal((b, dx)), rng.uniform(size=(b, dy))
    else:
        x, y = _structured(rng, b, dx, dy)
    expected = dcor.distance_correlation_sqr(x, y)
    got = distance_correlation(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-12)
    got_r = distance_correlation(torch.from_numpy(x), torch.from_numpy(y), squared=False).item()
    assert got_r == pytest.approx(dcor.distance_correlation(x, y), rel=1e-6, abs=1e-12)


def test_covariance_matches_dcor():
    rng = np.random.default_rng(0)
    x, y = _structured(rng, 50, 20, 5)
    got = distance_covariance(torch.from_numpy(x), torch.from_numpy(y)).item()
    assert got == pytest.approx(dcor.distance_covariance_sqr(x, y), rel=1e-6)


def test_images_of_any_trailing_shape_are_flattened():
    x = torch.rand(10, 3, 8, 8, dtype=torch.float64)
    y = torch.rand(10, 5, dtype=torch.float64)
    assert distance_correlation(x, y).item() == pytest.approx(distance_correlation(x.flatten(1), y).item(), rel=1e-12)


def test_float32_close_to_float64_at_large_dims():
    """8192 against 140,000 dims in float32, the training configuration."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 8192, generator=g)
    y = x[:, :100].repeat(1, 1400) ** 2 + 3.0  # 140,000 dims
    r32 = distance_correlation(x, y)
    r64 = distance_correlation(x.double(), y.double())
    assert r32.dtype == torch.float32
    assert r32.item() == pytest.approx(r64.item(), rel=1e-4)


@pytest.mark.parametrize("layout", ["all_offset", "offset_after_the_probe_rows"])
def test_float32_offset_inputs_stay_precise(layout):
    """Rows far from the origin (1e4 + noise): the Gram-matrix distances would cancel
    catastrophically in float32, so the rows must be centred first, also when the first rows
    (the cheap up-front estimate) look harmless and only the whole batch is offset."""
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(2064, 4, generator=g, dtype=torch.float64)
    x = noise + 1e4
    if layout == "offset_after_the_probe_rows":
        x[:16] = noise[:16]
    y = noise[:, :2] ** 2 + 0.5 * torch.randn(2064, 2, generator=g, dtype=torch.float64)
    r64 = distance_correlation(x, y).item()
    assert distance_correlation(x.float(), y.float()).item() == pytest.approx(r64, rel=1e-4)


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(6, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: distance_correlation(a, b), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: distance_correlation(a, b, squared=False), (x, y))
    assert torch.autograd.gradcheck(lambda a, b: distance_covariance(a, b), (x, y))


def test_gradcheck_shared_precomputed_dvar():
    """The loss passes dVar(z_aug) precomputed and shared by every term: its gradient must flow
    back through that shared value, and through the pairwise distances as well."""
    from mvmr.losses import distance_correlation_from_centered, double_centered_distances, pairwise_distances

    g = torch.Generator().manual_seed(2)
    x = torch.randn(7, 5, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randn(7, 3, dtype=torch.float64, generator=g, requires_grad=True)

    def shared(p, q):
        a = double_centered_distances(p)
        a_var = (a * a).mean()
        b = double_centered_distances(q)
        return distance_correlation_from_centered(a, b, a_var=a_var) + 2 * distance_correlation_from_centered(
            a, double_centered_distances(q**2), a_var=a_var, squared=False
        )

    assert torch.autograd.gradcheck(shared, (x, y))
    assert torch.autograd.gradcheck(lambda p: pairwise_distances(p) @ torch.arange(7.0, dtype=p.dtype), (x,))


def _random_rotation(d: int, seed: int) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(d, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.diagonal(r))


@pytest.mark.parametrize("which", ["x", "y"])
def test_invariances(which):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(40, 6, dtype=torch.float64, generator=g)
    y = x[:, :3].abs() + 0.3 * torch.randn(40, 3, dtype=torch.float64, generator=g)
    ref = distance_correlation(x, y).item()
    assert 0.1 < ref < 0.99

    def transformed(f):
        return distance_correlation(f(x), y) if which == "x" else distance_correlation(x, f(y))

    assert transformed(lambda t: 7.5 * t).item() == pytest.approx(ref, rel=1e-10)
    assert transformed(lambda t: t + 100.0).item() == pytest.approx(ref, rel=1e-8)
    assert transformed(lambda t: t @ _random_rotation(t.shape[1], 3)).item() == pytest.approx(ref, rel=1e-10)
    # ... and not invariant to a non-isometric map, so the checks above could fail
    assert transformed(lambda t: t**3).item() != pytest.approx(ref, rel=1e-3)


def test_affine_copy_has_dcor_one():
    x = torch.randn(30, 5, dtype=torch.float64)
    assert distance_correlation(x, -2.5 * x + 4.0).item() == pytest.approx(1.0, abs=1e-12)
    assert distance_correlation(x, 3.0 * x, squared=False).item() == pytest.approx(1.0, abs=1e-12)


def test_independent_samples_near_zero():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2000, 4, dtype=torch.float64, generator=g)
    y = torch.randn(2000, 4, dtype=torch.float64, generator=g)
    assert distance_correlation(x, y).item() < 0.01
    assert distance_correlation(x, x**2).item() > 0.1


def test_constant_input_gives_zero_and_finite_gradient():
    x = torch.full((8, 5), 3.0, requires_grad=True)
    y = torch.randn(8, 2, requires_grad=True)
    r = distance_correlation(x, y)
    r.backward()
    assert r.item() == 0.0
    assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()


def test_identical_samples_have_finite_gradient():
    base = torch.randn(4, 6)
    x = torch.cat([base, base]).requires_grad_(True)  # every row has an exact duplicate
    y = torch.randn(8, 3, requires_grad=True)
    for squared in (True, False):
        x.grad = y.grad = None
        distance_correlation(x, y, squared=squared).backward()
        assert torch.isfinite(x.grad).all() and torch.isfinite(y.grad).all()
        assert x.grad.abs().sum() > 0


def test_autocast_computes_in_float32():
    x, y = torch.randn(16, 32), torch.randn(16, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        r = distance_correlation(x @ torch.eye(32), y)  # the matmul output is bfloat16 under autocast
    assert r.dtype == torch.float32
    assert r.item() == pytest.approx(distance_correlation(x, y).item(), rel=2e-2)
    r16 = distance_correlation(x.half(), y.bfloat16())
    assert r16.dtype == torch.float32


def test_memory_is_never_b_b_d():
    """No saved activation is as large as a (B, B, D) difference tensor."""
    b, d = 32, 4096
    x = torch.randn(b, d, requires_grad=True)
    y = torch.randn(b, 3 * d, requires_grad=True)
    largest = 0

    def pack(t):
        nonlocal largest
        largest = max(largest, t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        distance_correlation(x, y).backward()
    assert largest <= b * 3 * d  # the input itself; b*b*d would be 32x larger


@pytest.mark.parametrize(
    "x,y,match",
    [
        (torch.randn(1, 4), torch.randn(1, 4), "at least 2"),
        (torch.randn(4, 4), torch.randn(5, 4), "batch sizes must match"),
        (torch.tensor([[0.0], [float("nan")], [1.0]]), torch.randn(3, 1), "non-finite"),
        (torch.randn(3, 2), torch.tensor([[0.0], [float("inf")], [1.0]]), "non-finite"),
    ],
)
def test_bad_input_raises_clear_error(x, y, match):
    with pytest.raises(ValueError, match=match):
        distance_correlation(x, y)
