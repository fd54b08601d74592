"""Exact mean queueing delays, against which the simulator is checked.

With Poisson arrivals (rate ``lam``), FIFO and ``c`` servers, the mean wait for a server is known
exactly when service is exponential (M/M/c, Erlang C) or constant (M/D/1 by Pollaczek-Khinchine,
M/D/c by Crommelin's series). The monolithic mode with constant token counts is M/D/c;
with exponential prompt tokens and negligible decode it is M/M/c.
"""

from __future__ import annotations

import math


def erlang_c(c: int, offered: float) -> float:
    """Probability that an arrival waits, for ``offered`` = lam * mean_service Erlangs on c servers."""
    if offered >= c:
        return 1.0
    term, total = 1.0, 1.0  # a^k / k! summed for k < c
    for k in range(1, c):
        term *= offered / k
        total += term
    top = term * offered / c / (1 - offered / c)  # a^c / c! * c / (c - a)
    return top / (total + top)


def mmc_wait(lam: float, mean_service: float, c: int) -> float:
    """Mean wait in queue of M/M/c."""
    offered = lam * mean_service
    if offered >= c:
        return math.inf
    return erlang_c(c, offered) * mean_service / (c - offered)


def md1_wait(lam: float, service: float) -> float:
    """Mean wait in queue of M/D/1 (Pollaczek-Khinchine with zero service variance)."""
    rho = lam * service
    return math.inf if rho >= 1 else rho * service / (2 * (1 - rho))


def _poisson_upper_tail(n: int, x: float) -> float:
    """P(N >= n) for N ~ Poisson(x), summed from n upward (accurate when n > x)."""
    if n <= x:  # the tail holds most of the mass: use the complement
        return 1.0 - sum(math.exp(j * math.log(x) - x - math.lgamma(j + 1)) for j in range(n)) if x > 0 else 0.0
    total, j = 0.0, n
    term = math.exp(n * math.log(x) - x - math.lgamma(n + 1))
    while term > 1e-18 * max(total, 1e-300):
        total += term
        j += 1
        term *= x / j
    return total


def mdc_wait(lam: float, service: float, c: int) -> float:
    """Mean wait in queue of M/D/c (Crommelin 1932), in units of ``service``.

    W = D * sum_k>=1 [ P(N_k >= kc) - (c / a) P(N_k >= kc + 1) ], N_k ~ Poisson(k a), a = lam * D.
    """
    a = lam * service
    if a >= c:
        return math.inf
    total = 0.0
    for k in range(1, 100_000):
        x = k * a
        term = _poisson_upper_tail(k * c, x) - (c / a) * _poisson_upper_tail(k * c + 1, x)
        total += term
        if abs(term) < 1e-13 and k > 5:
            break
    return service * total
