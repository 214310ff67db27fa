"""Dealing one file's rows to simulated sites: IID, Dirichlet over labels, or by a column.

(Real silos need no dealing: ``partition: files`` gives each client its own dataset
entry, which no other process reads.) Every split is seeded and returns, per client,
the indices of its rows in their original order.

Example:
    >>> [len(c) for c in iid_split(10, 3, seed=0)]
    [4, 3, 3]
    >>> column_split(["a", "b", "a", "c", "b", "a"], 2)
    [[0, 2, 5], [1, 3, 4]]
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from ft_plugin.errors import UserError

_DIRICHLET_TRIES = 100


def iid_split(rows: int, clients: int, seed: int) -> list[list[int]]:
    """A seeded shuffle dealt round-robin: sizes differ by at most one row."""
    if rows < clients:
        raise UserError(f"federated.num_clients: {clients} clients but only {rows} rows to share")
    order = np.random.default_rng(seed).permutation(rows)
    return [sorted(int(i) for i in order[k::clients]) for k in range(clients)]


def dirichlet_split(
    labels: Sequence[str], clients: int, alpha: float, seed: int
) -> list[list[int]]:
    """Each label's rows split among clients by proportions drawn from Dir(alpha)
    (Hsu et al., 2019); smaller alpha, more skew. Redrawn until every client has a row."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, label in enumerate(labels):
        by_label[label].append(i)
    rng = np.random.default_rng(seed)
    for _ in range(_DIRICHLET_TRIES):
        parts: list[list[int]] = [[] for _ in range(clients)]
        for label in sorted(by_label):
            members = rng.permutation(by_label[label])
            cuts = (np.cumsum(rng.dirichlet([alpha] * clients))[:-1] * len(members)).astype(int)
            for k, chunk in enumerate(np.split(members, cuts)):
                parts[k] += [int(i) for i in chunk]
        if all(parts):
            return [sorted(p) for p in parts]
    raise UserError(
        f"federated.alpha: {alpha} leaves a client without rows in {_DIRICHLET_TRIES} draws "
        f"({len(labels)} rows, {clients} clients); raise alpha or use fewer clients"
    )


def column_split(values: Sequence[str], clients: int) -> list[list[int]]:
    """One group per distinct value, largest first, each to the client holding the fewest
    rows so far: with as many clients as values, one client per value."""
    counts = Counter(values)
    if len(counts) < clients:
        raise UserError(
            f"federated.num_clients: {clients} clients but the column has {len(counts)} "
            f"distinct values ({', '.join(map(str, counts))}); use num_clients ≤ {len(counts)}"
        )
    loads = [0] * clients
    owner: dict[str, int] = {}
    for value, count in sorted(counts.items(), key=lambda item: (-item[1], str(item[0]))):
        k = loads.index(min(loads))
        owner[value], loads[k] = k, loads[k] + count
    parts: list[list[int]] = [[] for _ in range(clients)]
    for i, value in enumerate(values):
        parts[owner[value]].append(i)
    return parts
