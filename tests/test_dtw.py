"""engine.dtw: the kernels against a plain reference, the band, and the multiscale mode."""
from __future__ import annotations

import numpy as np

from engine import dtw


def _unit_rows(X):
    return (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)


def _reference_cost(A, B, penalty):
    """Plain O(nm) DTW in Python with the same steps and penalty, fixed start/end (no gully)."""
    C = 1.0 - A @ B.T
    n, m = C.shape
    D = np.full((n, m), np.inf)
    D[0, 0] = C[0, 0]
    for i in range(n):
        for j in range(m):
            if i == j == 0:
                continue
            best = min(D[i - 1, j - 1] if i and j else np.inf,
                       D[i - 1, j] + penalty if i else np.inf,
                       D[i, j - 1] + penalty if j else np.inf)
            D[i, j] = best + C[i, j]
    return D[-1, -1]


def test_full_dtw_matches_reference_cost():
    rng = np.random.default_rng(1)
    A, B = _unit_rows(rng.random((30, 12))), _unit_rows(rng.random((41, 12)))
    # gully so small that start and end are forced to the corners
    pi, pj, total = dtw.dtw_full(A, B, penalty=0.2, skip_cost=10.0, gully=0.0)
    assert (pi[0], pj[0], pi[-1], pj[-1]) == (0, 0, 29, 40)
    assert total == np.float32(_reference_cost(A, B, 0.2)) or abs(total - _reference_cost(A, B, 0.2)) < 1e-3
    assert np.all(np.diff(pi) >= 0) and np.all(np.diff(pj) >= 0)
    assert np.all((np.diff(pi) + np.diff(pj)) >= 1)


def _warped_pair(n=3000, stretch=1.3, seed=0):
    rng = np.random.default_rng(seed)
    # A smooth random feature trajectory, sampled on two time grids related by a non-linear warp.
    base = np.cumsum(rng.standard_normal((n // 10 + 2, 12)), axis=0)
    t_a = np.linspace(0, len(base) - 1.001, n)
    u = np.linspace(0, 1, int(n * stretch))
    t_b = (u + 0.05 * np.sin(2 * np.pi * u)) * (len(base) - 1.001)
    interp = lambda t: base[t.astype(int)] * (1 - (t % 1))[:, None] + base[t.astype(int) + 1] * (t % 1)[:, None]
    A, B = interp(t_a), interp(t_b)
    A -= A.mean(axis=0)
    B -= B.mean(axis=0)
    return _unit_rows(A), _unit_rows(B), t_a, t_b


def test_multiscale_finds_the_warp_with_linear_memory():
    A, B, t_a, t_b = _warped_pair()
    pi, pj, _, band_cells = dtw.dtw_multiscale(A, B, [12], penalty=0.05, skip_cost=0.5, gully=0.05,
                                               max_coarse_frames=300)
    # Each matched pair of frames should come from (nearly) the same underlying time.
    err = np.abs(t_a[pi] - t_b[pj])
    assert np.median(err) < 0.2 and np.percentile(err, 95) < 1.0
    assert band_cells < 0.05 * len(A) * len(B)  # linear, not quadratic


def test_gully_lets_a_cropped_sequence_start_late():
    A, B, t_a, t_b = _warped_pair(n=800, stretch=1.0)
    cropped = B[100:]  # the recording misses the first 1/8
    median = float(np.median(1.0 - A @ cropped.T))  # what engine.align uses for both
    pi, pj, _ = dtw.dtw_full(A, cropped, penalty=median, skip_cost=median, gully=0.2)
    assert pj[0] == 0 and abs(pi[0] - 100) <= 3


def test_band_from_path_covers_the_projection():
    lo, hi = dtw.band_from_path(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 2]), 4, 16, 12, radius=1)
    assert lo[0] == 0 and hi[-1] == 12
    assert np.all(np.diff(lo) >= 0) and np.all(np.diff(hi) >= 0)
    for ci, cj in zip([0, 1, 2, 3], [0, 0, 1, 2]):
        for i in range(ci * 4, ci * 4 + 4):
            assert lo[i] <= cj * 4 and hi[i] >= min(12, cj * 4 + 4)
