r"""Regimes: what each run does in the long run, judged from its last steps.

The engine hands over, per run, the last ``W`` iterates (or a fixed random
projection of them when there are more than eight parameters), the norms of the
last ``W`` steps and a few running counts. The rules, in the order applied:

1. **diverged**: a loss or parameter was non-finite at some step.
2. **converged**, settled: the run stayed within tolerance (see the engine:
   its gradient at most ``rtol`` times the largest it had) over the whole last
   quarter of the window. Rounding may leave it hopping between neighbouring
   floating-point numbers; that is still a fixed point.
3. **converged**, at rest: the steps of the last quarter window are at the
   floating-point floor (:math:`\|\Delta w\| \le 8\varepsilon P`) and the final
   gradient is at most half the largest seen. At rest with the gradient as
   large as ever is **stalled** (a zero or vanishing learning rate).
4. **converged**, geometrically: the largest step in each quarter of the
   window is smaller than in the quarter before, the last is below
   ``1 - DECAY`` times the first, and the shrinking is not levelling off
   (m₄/m₃ ≤ √(m₂/m₁) for the quarter maxima m₁…m₄), and nearby paths do not
   separate (a Lyapunov exponent, when measured, of at most ``CHAOS``).
5. **oscillating** with period :math:`p \ge 2`: over the last quarter window
   :math:`\|w_t - w_{t-p}\| \le 1000\,\varepsilon P`, and that gap is not
   growing from the quarter before (unless it is at the floor,
   :math:`16\,\varepsilon P`); the smallest such p.
6. **diverged**, geometrically: the largest step in each eighth is larger
   than in the eighth before, the last is above ``1 + GROWTH`` times the
   first, and the run is heading off: its loss rose over the window to above
   its starting loss, or its parameters grew past twice their norm at the
   start and at the window's start. (Steps also grow while a run slides off a
   local maximum into a valley, or in a spike that training recovers from:
   not divergence.)
7. **stalled**: still moving steadily in one direction (the net displacement
   over the window is more than half the path length): too few steps to tell.
8. **oscillating**, aperiodic (period 0): bounded motion that does none of
   the above.

Here ε is the dtype's machine epsilon and P the run's own parameter scale, the
largest of :math:`\|w_0\|` and :math:`\|w_t\|` over the window.
"""

import enum
from typing import NamedTuple

import jax
import jax.numpy as jnp


class Regime(enum.IntEnum):
    """Integer codes stored in the ``regime`` variable."""

    NOT_RUN = -1
    CONVERGED = 0
    OSCILLATING = 1
    DIVERGED = 2
    STALLED = 3

    @property
    def label(self) -> str:
        return self.name.lower()


#: Relative change of the largest step over the window that counts as
#: geometric decay or growth rather than a steady state.
DECAY = 1e-3
GROWTH = 1e-3
#: Net displacement over path length above which steady motion is a drift.
DRIFT = 0.5
#: Largest period looked for.
MAX_PERIOD = 64
#: Finite-time Lyapunov exponent above which aperiodic motion is chaotic.
#: Quasi-periodic and slowly settling motion gives exponents near zero,
#: within a few times 1/T of it; chaos in the maps studied here gives 0.1–1.
CHAOS = 0.02


class Tail(NamedTuple):
    """What the engine keeps of each run for classification (batched).

    Attributes:
      features: ``(W, ..., k)`` the last W iterates, or their projections
        (time first: every rule then works elementwise across runs).
      quarters: ``(4, ...)`` the largest step norm in each quarter of the
        window, the last quarter last (quarters of ``W // 4`` steps ending the
        window).
      eighths: ``(8, ...)`` the same over eighths.
      path_length: ``(...)`` the sum of the step norms over the window.
      reach: ``(...)`` the largest norm of ``features`` over the window.
      start_norm: ``(...)`` the norm of the starting parameters, projected
        like ``features``.
      displacement: ``(...)`` the norm of the net move over the window.
      escaping: ``(...)`` whether the loss rose over the window to above its
        start, or the parameters grew to more than twice their norm at the
        start and at the window's start: growth that heads
        off, rather than a run sliding away from a local maximum into a valley
        or a spike that training recovers from.
      diverged_at: ``(...)`` first step with a non-finite value, or -1.
      final_grad: ``(...)`` gradient norm at the last iterate.
      max_grad: ``(...)`` largest gradient norm seen.
      opposite_pairs: ``(...)`` successive steps with a negative inner product.
      pairs: ``(...)`` successive steps both above the floating-point floor.
      settled: ``(...)`` whether the run stayed within tolerance over the
        whole last quarter of the window.
      lyapunov: ``(...)`` the finite-time Lyapunov exponent, or None when not
        measured. Step sizes of a chaotic orbit can fall four quarters in a
        row by chance; an exponent above :data:`CHAOS` vetoes rule 4.
    """

    features: jnp.ndarray
    quarters: jnp.ndarray
    eighths: jnp.ndarray
    path_length: jnp.ndarray
    reach: jnp.ndarray
    start_norm: jnp.ndarray
    displacement: jnp.ndarray
    escaping: jnp.ndarray
    diverged_at: jnp.ndarray
    final_grad: jnp.ndarray
    max_grad: jnp.ndarray
    opposite_pairs: jnp.ndarray
    pairs: jnp.ndarray
    settled: jnp.ndarray
    lyapunov: jnp.ndarray | None = None


class Verdict(NamedTuple):
    regime: jnp.ndarray
    period: jnp.ndarray
    overshoot: jnp.ndarray


def classify(tail: Tail) -> Verdict:
    """Applies the rules above to a batch of runs.

    Returns:
      ``regime`` (:class:`Regime` codes), ``period`` (1 for a fixed point,
      p ≥ 2 for a cycle, 0 when none) and ``overshoot`` (converged while most
      successive steps point in opposite directions: the zig-zag).
    """
    eps = jnp.finfo(tail.features.dtype).eps
    window = tail.features.shape[0]
    quarter = max(window // 4, 1)

    scale = jnp.maximum(tail.start_norm, tail.reach)
    scale = jnp.where(jnp.isfinite(scale), scale, 0.0) + jnp.finfo(scale.dtype).tiny

    quarters, eighths = list(tail.quarters), list(tail.eighths)
    # Shrinking towards zero, not towards a floor: the last quarter must still
    # shrink at least half as fast (in log) as the first did. Steps that level
    # off belong to a run settling onto a cycle in some coordinates.
    shrinking = (
        (True if tail.lyapunov is None else ~(tail.lyapunov > CHAOS))
        & _monotone(quarters, -1)
        & (quarters[-1] < (1 - DECAY) * quarters[0])
        & (quarters[3] * quarters[0] ** 0.5 <= quarters[2] * quarters[1] ** 0.5)
    )
    # Growth must hold over eighths: bounded irregular motion rarely grows
    # eight blocks in a row, geometric divergence always does.
    growing = (
        tail.escaping
        & _monotone(eighths, 1)
        & (eighths[-1] > (1 + GROWTH) * eighths[0])
    )
    at_rest = quarters[-1] <= 8 * eps * scale
    progressed = tail.final_grad <= 0.5 * tail.max_grad
    # A contraction by ρ = e^λ < 1 per step cannot take the distance to its
    # fixed point below about half an ulp / (1 − ρ): each step rounds by up to
    # half an ulp. Near ρ = 1 that floor is many ulps wide, and rounding can
    # hold the run there in a cycle (lr·λ just below 2 on a quadratic in
    # float32 hops between 2 ± 6 ulps). Steps within four times that floor
    # (and within the period search's own tolerance) are rounding, not motion.
    rounding = False
    if tail.lyapunov is not None:
        contraction = -jnp.expm1(jnp.minimum(tail.lyapunov, 0.0))
        floor = jnp.minimum(4 * eps * scale / contraction, 1000 * eps * scale)
        rounding = (tail.lyapunov < 0) & (quarters[-1] <= floor)

    drifting = tail.displacement > DRIFT * tail.path_length

    nonfinite = tail.diverged_at >= 0
    converged = ~nonfinite & (
        tail.settled | ((at_rest | rounding) & progressed) | (~at_rest & shrinking)
    )
    # The period search is the costliest rule. Called on a whole batch (not
    # under vmap), it skips the lags no run of the batch can have.
    searched = ~nonfinite & ~converged & ~at_rest
    period = _period(
        tail.features, quarter, 1000 * eps * scale, 16 * eps * scale, searched
    )
    cycling = searched & (period >= 2)
    # The first rule that holds wins (nested selects: XLA turns jnp.select
    # into a reduction that is slow on the CPU).
    regime = jnp.full(nonfinite.shape, Regime.OSCILLATING, jnp.int8)
    for holds, code in reversed(
        [
            (nonfinite, Regime.DIVERGED),
            (converged, Regime.CONVERGED),
            (at_rest, Regime.STALLED),
            (cycling, Regime.OSCILLATING),
            (growing, Regime.DIVERGED),
            (drifting, Regime.STALLED),
        ]
    ):
        regime = jnp.where(holds, jnp.int8(code), regime)

    period = jnp.where(converged, 1, jnp.where(cycling, period, 0)).astype(jnp.int32)
    overshoot = converged & (2 * tail.opposite_pairs > tail.pairs)
    return Verdict(regime=regime, period=period, overshoot=overshoot)


def chaotic(regime, period, lyapunov):
    """Oscillating, with no period up to :data:`MAX_PERIOD`, and a positive
    finite-time Lyapunov exponent: nearby paths separate exponentially.

    >>> import jax.numpy as jnp
    >>> regime, period = jnp.array([1, 1, 0]), jnp.array([0, 2, 1])
    >>> chaotic(regime, period, jnp.array([0.7, -0.3, -1.0]))
    Array([ True, False, False], dtype=bool)
    """
    return (regime == Regime.OSCILLATING) & (period == 0) & (lyapunov > CHAOS)


def _period(features, quarter, tolerance, floor, needed):
    """The smallest p ≥ 2 with w_t ≈ w_{t-p} over the last quarter, else 0.

    A gap that is above the floating-point floor and still growing from one
    quarter to the next is a slow divergence, not a cycle. Only ``needed``
    runs are searched, and of those only the ones whose last iterate is
    within tolerance of an earlier one at some lag (a necessary condition,
    cheap to screen for every lag at once). Those few are gathered into the
    smallest of a few fixed sizes that holds them and searched there, so a
    batch with few cycles costs little more than the screen.
    """
    window, runs = features.shape[:2]
    longest = min(MAX_PERIOD, window - 2 * quarter)
    none = jnp.zeros((runs,), dtype=jnp.int32)
    if longest < 2:
        return none
    # The smallest gap (squared) between the last iterate and an earlier one.
    closest = jnp.full((runs,), jnp.inf, features.dtype)
    for p in range(2, longest + 1):
        gap = jnp.sum(jnp.square(features[-1] - features[-1 - p]), axis=-1)
        closest = jnp.fmin(closest, gap)
    screened = needed & (closest <= jnp.square(tolerance))
    count = jnp.sum(screened.astype(jnp.int32))

    def search(size):
        if size == runs:
            return lambda: jnp.where(
                screened, _search(features, quarter, longest, tolerance, floor), 0
            )

        def gathered():
            # Missing entries point past the end and are dropped on the way back.
            where = jnp.nonzero(screened, size=size, fill_value=runs)[0]
            found = _search(
                features.at[:, where].get(mode="fill", fill_value=0),
                quarter,
                longest,
                tolerance.at[where].get(mode="fill", fill_value=0),
                floor.at[where].get(mode="fill", fill_value=0),
            )
            return none.at[where].set(found, mode="drop")

        return gathered

    sizes = sorted({max(runs // 64, 1), max(runs // 8, 1), runs})
    branch = jnp.searchsorted(jnp.asarray(sizes), count)
    return jax.lax.cond(
        count > 0,
        lambda: jax.lax.switch(branch, [search(size) for size in sizes]),
        lambda: none,
    )


def _search(features, quarter, longest, tolerance, floor):
    """The period search proper, over lags 2 … ``longest`` of every run given."""
    window = features.shape[0]

    def gap(end, p):
        now = features[end - quarter : end]
        before = jax.lax.dynamic_slice_in_dim(features, end - quarter - p, quarter)
        return _rows(jnp.maximum, jnp.linalg.norm(now - before, axis=-1))

    def check(p, found):
        last, previous = gap(window, p), gap(window - quarter, p)
        steady = (last <= (1 + GROWTH) * previous) | (last <= floor)
        match = (last <= tolerance) & steady
        # Upwards from p = 2, so the first match is the smallest.
        return jnp.where((found == 0) & match, p, found)

    found = jnp.zeros(features.shape[1:2], dtype=jnp.int32)
    return jax.lax.fori_loop(2, longest + 1, check, found)


def _rows(combine, rows):
    """Folds the rows of ``rows`` (the time axis) with an elementwise ``combine``.

    Halving pairwise: XLA's CPU reductions over a leading axis are several
    times slower than these elementwise passes, which it fuses.
    """
    while rows.shape[0] > 1:
        half = rows.shape[0] // 2
        folded = combine(rows[:half], rows[half : 2 * half])
        if rows.shape[0] % 2:
            folded = folded.at[0].set(combine(folded[0], rows[-1]))
        rows = folded
    return rows[0]


def _monotone(maxima, sign):
    """Whether each block's maximum is above (sign 1) or below (-1) the last."""
    result = True
    for before, after in zip(maxima, maxima[1:], strict=False):
        result = result & (sign * (after - before) > 0)
    return result
