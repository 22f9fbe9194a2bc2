"""The Pareto front of a search: accuracy against cost, every trial kept."""

from collections.abc import Sequence


def pareto_front(accuracies: Sequence[float], costs: Sequence[float]) -> list[int]:
    """Returns the indices of the trials no other trial dominates, by cost.

    A trial dominates another when it is at least as accurate and at most as
    costly, and strictly better in one of the two. Of equal trials (same
    accuracy and cost) the first is kept.

    Args:
        accuracies: Each trial's accuracy (higher is better).
        costs: Each trial's cost (lower is better), in the same order.

    Returns:
        The front's indices, cheapest first.

    Raises:
        ValueError: The two sequences differ in length.
    """
    if len(accuracies) != len(costs):
        raise ValueError(
            f"Expected as many costs as accuracies. Received: {len(accuracies)} "
            f"accuracies, {len(costs)} costs"
        )
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -accuracies[i], i))
    front, best = [], float("-inf")
    for index in order:
        if accuracies[index] > best:
            front.append(index)
            best = accuracies[index]
    return front
