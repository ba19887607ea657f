"""Local search on tile positions: moves to free positions and swaps that cut traffic.

A cheap improvement of the constructive hint before CP-SAT sees it (the solver then
starts from a good plan and tries to prove or beat it). Deterministic: tiles in index
order, ties broken by position index.
"""

from __future__ import annotations

import numpy as np


def improve_positions(position: list, weights: dict, usable: list, passes: int = 20, swap_candidates: int = 8, max_evaluations: int = 10**9) -> list:
    """Best-improvement moves and swaps until no pass improves the weighted hop sum, or
    `max_evaluations` cost evaluations are spent (a work bound, so the result does not
    depend on the machine's speed)."""
    count = len(position)
    coords = np.array(usable, dtype=np.int64)
    index_of = {tuple(p): k for k, p in enumerate(usable)}
    at = np.array([index_of[tuple(p)] for p in position], dtype=np.int64)  # tile -> position index
    owner = np.full(len(usable), -1, dtype=np.int64)
    owner[at] = np.arange(count)
    neighbours: list[list] = [[] for _ in range(count)]
    for (a, b), w in weights.items():
        neighbours[a].append((b, w))
        neighbours[b].append((a, w))

    spent = 0

    def cost_everywhere(g: int) -> np.ndarray:
        """Traffic of tile g's flows if g sat at each position (others where they are)."""
        nonlocal spent
        spent += 1
        total = np.zeros(len(usable))
        for n, w in neighbours[g]:
            total += w * np.abs(coords - coords[at[n]]).sum(axis=1)
        return total

    for _ in range(passes):
        improved = False
        for g in range(count):
            if not neighbours[g]:
                continue
            if spent >= max_evaluations:
                return [tuple(int(v) for v in usable[k]) for k in at]
            here = at[g]
            costs = cost_everywhere(g)
            current = costs[here]
            # Moves to a free position.
            free_costs = np.where(owner < 0, costs, np.inf)
            target = int(np.argmin(free_costs))
            best_delta, best_target = free_costs[target] - current, target
            # Swaps with the occupants of the most attractive positions.
            for q in np.argsort(costs, kind="stable")[:swap_candidates]:
                h = owner[q]
                if h < 0 or h == g:
                    continue
                h_costs = cost_everywhere(h)
                mutual = sum(w for n, w in neighbours[g] if n == h)
                distance = np.abs(coords[here] - coords[q]).sum()
                delta = (costs[q] - current) + (h_costs[here] - h_costs[q]) + 2 * mutual * distance
                if delta < best_delta - 1e-9:
                    best_delta, best_target = delta, int(q)
            if best_delta < -1e-9:
                h = owner[best_target]
                owner[here], owner[best_target] = h, g
                at[g] = best_target
                if h >= 0:
                    at[h] = here
                improved = True
        if not improved:
            break
    return [tuple(int(v) for v in usable[k]) for k in at]
