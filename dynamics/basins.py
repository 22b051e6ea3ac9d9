"""Basins of attraction: which minimum each converged run reaches.

The engine hands over every run's last iterate. Converged runs whose end
points lie within a small distance of each other reached the same minimum;
each group is a basin, numbered in a fixed order (by the loss at its minimum,
then by its coordinates), so the numbering does not depend on the grid.

>>> import numpy as np
>>> ends = np.array([[1.0], [-1.0], [1.0 + 1e-3], [5.0]])
>>> found = assign(ends, np.array([True, True, True, False]), np.zeros(4))
>>> found.basin.tolist(), found.minima.ravel().tolist()
([1, 0, 1, -1], [-1.0, 1.0])
"""

from typing import NamedTuple

import numpy as np

#: More minima than this is a continuum (a valley or a manifold of minima),
#: not a set of basins.
MAX_BASINS = 64
#: End points closer than this share of their scale (chained) are one minimum.
#: Converged runs stop once the gradient is small, not at the minimum itself,
#: so in a flat valley their end points spread along it.
TOLERANCE = 0.05
#: Distinct end points (after rounding) above which grouping would be too slow
#: and the minima are a continuum anyway.
MAX_POINTS = 4096


class Basins(NamedTuple):
    """Attributes:
    basin: per run, the index of its minimum, -1 when it did not converge.
    minima: ``(k, P)`` each minimum: the end point of its runs with the least
      loss.
    loss: ``(k,)`` the final loss at each minimum (the least of its runs).
    continuum: whether the end points spread over more than
      :data:`MAX_BASINS` minima, in which case no basin is assigned.
    """

    basin: np.ndarray
    minima: np.ndarray
    loss: np.ndarray
    continuum: bool


def assign(
    final: np.ndarray,
    converged: np.ndarray,
    final_loss: np.ndarray,
    reached: np.ndarray | None = None,
) -> Basins:
    """Groups the end points of converged runs into minima.

    Args:
      final: ``(n, P)`` each run's last iterate.
      converged: ``(n,)`` which runs converged.
      final_loss: ``(n,)`` each run's final loss.
      reached: ``(n,)`` which runs reached the tolerance (default: the
        converged ones). Only their end points define minima: a run that
        converges geometrically but slowly may end far from its limit. Every
        other converged run joins the nearest minimum within the grouping
        distance, or none.
    """
    converged = np.asarray(converged, dtype=bool)
    if reached is not None:
        reached = np.asarray(reached, dtype=bool) & converged
        found = assign(final, reached, final_loss)
        final = np.asarray(final, dtype=np.float64).reshape(len(converged), -1)
        late = np.flatnonzero(converged & ~reached & np.all(np.isfinite(final), 1))
        if found.continuum or not len(found.minima) or not late.size:
            return found
        radius = TOLERANCE * max(np.max(np.abs(found.minima)), 1.0)
        gaps = np.linalg.norm(final[late, None, :] - found.minima[None], axis=-1)
        nearest = np.argmin(gaps, axis=1)
        close = gaps[np.arange(late.size), nearest] <= radius
        basin = found.basin.copy()
        basin[late[close]] = nearest[close]
        return found._replace(basin=basin)
    final = np.asarray(final, dtype=np.float64).reshape(len(converged), -1)
    converged = converged & np.all(np.isfinite(final), axis=1)
    final_loss = np.asarray(final_loss, dtype=np.float64)
    runs = np.flatnonzero(converged)
    empty = Basins(
        np.full(len(final), -1, np.int64),
        np.zeros((0, final.shape[1])),
        np.zeros(0),
        False,
    )
    if not runs.size:
        return empty
    radius = TOLERANCE * max(np.max(np.abs(final[runs])), 1.0)
    # Round first: a million runs end at a few hundred distinguishable points.
    cells, inverse = np.unique(
        np.round(final[runs] / (radius / 4)), axis=0, return_inverse=True
    )
    if len(cells) > MAX_POINTS:
        return empty._replace(continuum=True)
    group = _chained(cells * (radius / 4), radius)
    if group.max() + 1 > MAX_BASINS:
        return empty._replace(continuum=True)
    label = group[inverse.ravel()]
    minima, losses = [], []
    for k in range(group.max() + 1):
        members = runs[label == k]
        best = members[np.argmin(final_loss[members])]
        minima.append(final[best])
        losses.append(final_loss[best])
    minima, losses = np.array(minima), np.array(losses)
    # Order by loss, rounded so that equal minima tie, then by coordinates.
    keys = [np.round(losses / radius)] + [minima[:, j] for j in range(minima.shape[1])]
    order = np.lexsort(keys[::-1])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    basin = np.full(len(final), -1, np.int64)
    basin[runs] = rank[label]
    return Basins(basin, minima[order], losses[order], False)


def _chained(points, radius):
    """Groups of points linked by chains of steps no longer than ``radius``."""
    parent = np.arange(len(points))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(points)):
        near = np.flatnonzero(
            np.linalg.norm(points[i + 1 :] - points[i], axis=1) <= radius
        )
        for j in near + i + 1:
            a, b = root(i), root(j)
            if a != b:
                parent[max(a, b)] = min(a, b)
    roots = np.array([root(i) for i in range(len(points))])
    return np.unique(roots, return_inverse=True)[1].ravel()
