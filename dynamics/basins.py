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

    The runs are read in blocks of :data:`BLOCK`, so that a sweep of millions
    of runs needs little memory beyond its ``basin`` array.
    """
    converged = np.asarray(converged, dtype=bool)
    final = np.asarray(final).reshape(len(converged), -1)
    if reached is not None:
        reached = np.asarray(reached, dtype=bool) & converged
        found = assign(final, reached, final_loss)
        if found.continuum or not len(found.minima):
            return found
        radius = TOLERANCE * max(np.max(np.abs(found.minima)), 1.0)
        basin = found.basin
        for block in _blocks(len(final)):
            rows = final[block].astype(np.float64)
            late = np.flatnonzero(
                converged[block] & ~reached[block] & np.all(np.isfinite(rows), 1)
            )
            if not late.size:
                continue
            gaps = np.linalg.norm(rows[late, None, :] - found.minima[None], axis=-1)
            nearest = np.argmin(gaps, axis=1)
            close = gaps[np.arange(late.size), nearest] <= radius
            basin[block.start + late[close]] = nearest[close]
        return found._replace(basin=basin)

    def usable(block):
        rows = final[block].astype(np.float64)
        keep = converged[block] & np.all(np.isfinite(rows), axis=1)
        return rows, keep

    empty = Basins(
        np.full(len(final), -1, np.int32),
        np.zeros((0, final.shape[1])),
        np.zeros(0),
        False,
    )
    largest = None
    for block in _blocks(len(final)):
        rows, keep = usable(block)
        if keep.any():
            top = np.max(np.abs(rows[keep]))
            largest = top if largest is None else max(largest, top)
    if largest is None:
        return empty
    radius = TOLERANCE * max(largest, 1.0)
    # Round first: a million runs end at a few hundred distinguishable points.
    cells = np.zeros((0, final.shape[1]))
    for block in _blocks(len(final)):
        rows, keep = usable(block)
        rounded = np.round(rows[keep] / (radius / 4))
        cells = np.unique(np.concatenate([cells, rounded]), axis=0)
        if len(cells) > MAX_POINTS:
            return empty._replace(continuum=True)
    group = _chained(cells * (radius / 4), radius)
    if group.max() + 1 > MAX_BASINS:
        return empty._replace(continuum=True)

    count = group.max() + 1
    best_loss = np.full(count, np.inf)
    best = np.full(count, -1)
    basin = empty.basin
    for block in _blocks(len(final)):
        rows, keep = usable(block)
        runs = np.flatnonzero(keep)
        if not runs.size:
            continue
        rounded = np.round(rows[runs] / (radius / 4))
        # Each row's cell: unique over the cells and the rows together.
        _, inverse = np.unique(
            np.concatenate([cells, rounded]), axis=0, return_inverse=True
        )
        inverse = inverse.ravel()
        cell_of = np.empty(inverse[: len(cells)].max() + 1, np.int64)
        cell_of[inverse[: len(cells)]] = np.arange(len(cells))
        label = group[cell_of[inverse[len(cells) :]]]
        basin[block.start + runs] = label
        losses = np.asarray(final_loss[block], dtype=np.float64)[runs]
        for k in np.unique(label):
            members = np.flatnonzero(label == k)
            first = members[np.argmin(losses[members])]
            if losses[first] < best_loss[k] or best[k] < 0:
                best_loss[k], best[k] = losses[first], block.start + runs[first]
    minima = final[best].astype(np.float64)
    losses = np.asarray(final_loss, dtype=np.float64)[best]
    # Order by loss, rounded so that equal minima tie, then by coordinates.
    keys = [np.round(losses / radius)] + [minima[:, j] for j in range(minima.shape[1])]
    order = np.lexsort(keys[::-1])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    np.copyto(basin, rank[np.maximum(basin, 0)], where=basin >= 0, casting="unsafe")
    return Basins(basin, minima[order], losses[order], False)


#: Runs read at a time.
BLOCK = 2**20


def _blocks(count):
    return [slice(begin, min(begin + BLOCK, count)) for begin in range(0, count, BLOCK)]


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
