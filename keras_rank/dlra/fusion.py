"""Fusing parallel columns and rows of a factorized layer P W' Q (DLRA).

Lee et al. 2021, sections 4.2-4.3, with the corrections in docs/methods/dlra.md.
Everything here is NumPy and eager: it edits a :class:`FactorState` in place between
training steps, keeping every array's shape (fused groups are masked off),
and :func:`compact` finally drops the dead entries.

Vocabulary, with E = ``state.effective_kernel`` (groups_in, groups_out):

* paper *columns* are the rows ``E[i, :]`` (live where ``col_mask == 1``);
* paper *rows* are the rows of ``[E.T, bias[:, None]]`` (live where
  ``row_mask == 1``), or of ``E.T`` without bias.

Fusing ``w_drop ~ r w_keep`` keeps ``s w_keep`` with ``s = sqrt(r^2 + 1)``
and moves every coordinate of the dropped group to the kept one: in Q (or
P) the kept group becomes ``(r q_drop + q_keep) / s``. For exactly parallel or
opposite vectors the layer's function is unchanged and so is ``||W'||_F``,
hence also the Frobenius-normalization factor.

Layer semantics assumed (those of :mod:`keras_rank.layers.state`): a dead
row group computes ``z = 0`` (its kernel column is masked and fusion zeroes
its bias), and with feature-space reduction the activation is
ReLU-family, ``act(c z) = c act(z)`` for ``c > 0``, with ``act(0) = 0``.
"""

import dataclasses
from collections.abc import Mapping

import numpy as np

from keras_rank.core.errors import ConfigError
from keras_rank.layers.state import FactorState

COLUMNS = "columns"
ROWS = "rows"


@dataclasses.dataclass(frozen=True)
class FusionRecord:
    """What one fusion did.

    Attributes:
        axis: ``"columns"`` (input-side groups) or ``"rows"`` (output side).
        kept: Index of the group that was kept (and scaled by ``s``).
        dropped: Index of the group that was fused away.
        r: Least-squares ratio, ``w_dropped ~ r w_kept``.
        s: ``sqrt(r^2 + 1)``.
    """

    axis: str
    kept: int
    dropped: int
    r: float
    s: float


# --------------------------------------------------------------------------
# Vectors and coefficients.


def column_vectors(state: FactorState) -> tuple[np.ndarray, np.ndarray]:
    """Returns the paper's columns of a layer and their mask.

    Args:
        state: The layer.

    Returns:
        ``(vectors, mask)``: (groups_in, groups_out) rows of the effective
        kernel and ``col_mask``.
    """
    return state.effective_kernel, state.col_mask


def row_vectors(state: FactorState) -> tuple[np.ndarray, np.ndarray]:
    """Returns the paper's rows of a layer (bias appended) and their mask.

    Args:
        state: The layer.

    Returns:
        ``(vectors, mask)``: rows of ``[E.T, bias[:, None]]``, shape
        (groups_out, groups_in + 1), or of ``E.T`` without bias; and
        ``row_mask``.
    """
    vectors = state.effective_kernel.T
    if state.bias is not None:
        bias = state.bias * state.row_mask
        vectors = np.concatenate([vectors, bias[:, None]], axis=1)
    return vectors, state.row_mask


def fusion_coefficients(w_drop: np.ndarray, w_keep: np.ndarray) -> tuple[float, float]:
    """Returns the fusion coefficients ``(r, s)`` of ``w_drop ~ r w_keep``.

    ``r = (w_drop . w_keep) / (w_keep . w_keep)`` is the least-squares ratio
    (docs/methods/dlra.md; the paper's ratio of sums blows up when ``sum(w_keep) ~ 0``)
    and ``s = sqrt(r^2 + 1)``. ``r`` is 0 when ``w_keep`` is zero.

    Args:
        w_drop: (d,) the vector that is fused away.
        w_keep: (d,) the vector that is kept.

    Returns:
        ``(r, s)`` as Python floats, computed in float64.
    """
    w_drop = np.asarray(w_drop, dtype=np.float64).ravel()
    w_keep = np.asarray(w_keep, dtype=np.float64).ravel()
    kk = float(w_keep @ w_keep)
    r = float(w_drop @ w_keep) / kk if kk > 0.0 else 0.0
    return r, float(np.sqrt(r * r + 1.0))


# --------------------------------------------------------------------------
# Validation.


def _is_index(value: object) -> bool:
    """True for an int (Python or NumPy), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_group(name: str, value: object, mask: np.ndarray, axis: str) -> int:
    """Returns ``value`` as an int after checking it names a live group."""
    if not _is_index(value):
        raise ConfigError(f"Expected {name} to be an int. Received: {name}={value!r}")
    if not 0 <= value < len(mask):
        raise ConfigError(
            f"Expected 0 <= {name} < {len(mask)} ({axis} groups). "
            f"Received: {name}={value}"
        )
    if mask[value] == 0:
        raise ConfigError(
            f"Expected {name} to be a live {axis} group; it was fused away "
            f"(mask[{value}] == 0). Received: {name}={value}"
        )
    return int(value)


def _check_pair(state: FactorState, a: object, b: object, axis: str) -> tuple[int, int]:
    """Validates a fusion request and returns ``(a, b)`` as ints."""
    mask = state.col_mask if axis == COLUMNS else state.row_mask
    live = int(np.count_nonzero(mask))
    if live < 2:
        raise ConfigError(
            f"Expected state with at least 2 live {axis} groups to fuse. "
            f"Received: state with {live} live {axis} group(s)"
        )
    a = _check_group("a", a, mask, axis)
    b = _check_group("b", b, mask, axis)
    if a == b:
        raise ConfigError(f"Expected a != b. Received: a={a}, b={b}")
    return a, b


def _choose_keep(vectors: np.ndarray, a: int, b: int) -> tuple[int, int]:
    """Returns ``(keep, drop)``: keep the shorter vector (ties: ``a``).

    A zero vector is never kept over a non-zero one: dropping it is exact,
    whereas keeping it (``r = 0``) would lose the other vector.
    """
    na = float(np.linalg.norm(vectors[a]))
    nb = float(np.linalg.norm(vectors[b]))
    keep, drop = (a, b) if na <= nb else (b, a)
    if min(na, nb) == 0.0:
        keep, drop = drop, keep
    return keep, drop


# --------------------------------------------------------------------------
# Moving coordinates (Q for columns, P for rows).


def _move_coordinates(
    index: np.ndarray, coef: np.ndarray, keep: int, drop: int, r: float, s: float
) -> None:
    """Applies ``q_keep <- (r q_drop + q_keep) / s`` to a (group, coef) map."""
    from_drop = index == drop
    from_keep = index == keep
    coef[from_drop] = coef[from_drop] * (r / s)
    coef[from_keep] = coef[from_keep] / s
    index[from_drop] = keep


def fuse_columns(state: FactorState, a: int, b: int) -> FusionRecord:
    """Fuses two live column groups of a layer in place.

    The shorter effective column (row of E) is kept and scaled by ``s``; the
    other is zeroed and masked off; its input coordinates move to the kept
    group. ``r`` is computed on the effective vectors; with Frobenius
    normalization the raw kernel rows are the effective ones times a common
    factor, so scaling the raw row by ``s`` is the same operation.

    Args:
        state: The layer, modified in place.
        a: A live column group.
        b: Another live column group.

    Returns:
        The :class:`FusionRecord`.

    Raises:
        ConfigError: If ``state`` has fewer than 2 live column groups, or
            ``a`` / ``b`` is out of range, dead, or ``a == b``.
    """
    a, b = _check_pair(state, a, b, COLUMNS)
    vectors, _ = column_vectors(state)
    keep, drop = _choose_keep(vectors, a, b)
    r, s = fusion_coefficients(vectors[drop], vectors[keep])
    state.kernel[keep, :] *= s
    state.kernel[drop, :] = 0.0
    state.col_mask[drop] = 0.0
    _move_coordinates(state.q_index, state.q_coef, keep, drop, r, s)
    return FusionRecord(COLUMNS, keep, drop, r, s)


def fuse_rows(
    state: FactorState, a: int, b: int, next_state: FactorState | None = None
) -> FusionRecord:
    """Fuses two live row groups of a layer in place (bias included).

    Mirror image of :func:`fuse_columns` on the rows of ``[E.T, bias]``:
    kernel column and bias of the kept group are scaled by ``s``, the dropped
    ones zeroed and masked off, and its output coordinates move to the kept
    group in P. The layer's features then follow:

    * ``next_state is None`` (no feature-space reduction): one feature per
      output coordinate, ``feature_group = p_index``,
      ``feature_scale = p_coef``.
    * ``next_state`` given (feature-space reduction; the activation must be
      ReLU-family): output coordinate k is carried to the next layer as
      ``next_state.in_scale[k] * feature[next_state.in_index[k]]``. Every
      coordinate of the two groups is pointed at the feature slot
      ``(keep, sign(p_coef[k]))`` with ``in_scale = |p_coef[k]|``; the slots
      these coordinates used are reused, unneeded ones marked dead
      (``feature_scale = 0``). After a positive-ratio fusion of two
      single-sign groups one feature fewer is live.

    Args:
        state: The layer, modified in place.
        a: A live row group.
        b: Another live row group.
        next_state: The layer reading this one's features, modified in place,
            or None without feature-space reduction.

    Returns:
        The :class:`FusionRecord`.

    Raises:
        ConfigError: If ``state`` has fewer than 2 live row groups, ``a`` /
            ``b`` is out of range, dead, or ``a == b``; or if the feature
            arrays do not fit ``next_state``.
    """
    a, b = _check_pair(state, a, b, ROWS)
    _check_features(state, next_state)
    vectors, _ = row_vectors(state)
    keep, drop = _choose_keep(vectors, a, b)
    r, s = fusion_coefficients(vectors[drop], vectors[keep])
    affected = np.flatnonzero(np.isin(state.p_index, [keep, drop]))
    state.kernel[:, keep] *= s
    state.kernel[:, drop] = 0.0
    if state.bias is not None:
        state.bias[keep] *= s
        state.bias[drop] = 0.0
    state.row_mask[drop] = 0.0
    _move_coordinates(state.p_index, state.p_coef, keep, drop, r, s)
    if next_state is None:
        state.feature_group[:] = state.p_index
        state.feature_scale[:] = state.p_coef
    else:
        _reassign_features(state, next_state, affected, (keep, drop))
    return FusionRecord(ROWS, keep, drop, r, s)


# --------------------------------------------------------------------------
# Feature-space reduction.


def _check_features(state: FactorState, next_state: FactorState | None) -> None:
    """Checks the feature arrays against the reduction mode."""
    outputs = len(state.p_index)
    if next_state is None:
        if len(state.feature_group) != outputs:
            raise ConfigError(
                "Expected next_state for a layer with a reduced feature space "
                f"({len(state.feature_group)} feature slots, {outputs} outputs). "
                "Received: next_state=None"
            )
        return
    if len(next_state.in_index) != outputs:
        raise ConfigError(
            f"Expected next_state.in_index to have one entry per output "
            f"coordinate of state ({outputs}). Received: next_state with "
            f"len(in_index)={len(next_state.in_index)}"
        )


def _slot_key(p_index: np.ndarray, p_coef: np.ndarray) -> np.ndarray:
    """Returns (outputs, 2) int keys ``(group, sign)``; sign of 0 counts as +1."""
    sign = np.where(p_coef < 0, -1, 1)
    return np.stack([p_index.astype(np.int64), sign], axis=1)


def _reassign_features(
    state: FactorState,
    next_state: FactorState,
    affected: np.ndarray,
    groups: tuple[int, int],
) -> None:
    """Points the ``affected`` coordinates at (group, sign) feature slots.

    Candidate slots are those the affected coordinates read and those whose
    group is one of ``groups``, minus any slot another coordinate reads with
    a non-zero scale.
    """
    keep = groups[0]
    in_index, in_scale = next_state.in_index, next_state.in_scale
    others = np.setdiff1d(np.arange(len(in_index)), affected)
    reserved = in_index[others][in_scale[others] != 0]
    candidates = np.union1d(
        in_index[affected], np.flatnonzero(np.isin(state.feature_group, groups))
    )
    candidates = np.setdiff1d(candidates, reserved)
    signs = np.where(state.p_coef[affected] < 0, -1.0, 1.0)
    needed = [sign for sign in (1.0, -1.0) if np.any(signs == sign)]
    if len(candidates) < len(needed):
        raise ConfigError(
            "Expected next_state to read state's features consistently; no free "
            f"feature slot for row group {keep}. Received: next_state.in_index="
            f"{in_index.tolist()}"
        )
    slots = _pick_slots(state, candidates, keep, needed)
    for h in candidates:
        state.feature_group[h] = keep
        state.feature_scale[h] = 0.0
    for sign, h in slots.items():
        state.feature_scale[h] = sign
    in_index[affected] = [slots[sign] for sign in signs]
    in_scale[affected] = np.abs(state.p_coef[affected])


def _pick_slots(
    state: FactorState, candidates: np.ndarray, keep: int, needed: list[float]
) -> dict[float, int]:
    """Returns ``{sign: slot}``, reusing a slot that already holds the feature."""
    slots: dict[float, int] = {}
    free = [int(h) for h in candidates]
    for sign in needed:
        match = [
            h
            for h in free
            if state.feature_group[h] == keep and state.feature_scale[h] == sign
        ]
        slots[sign] = match[0] if match else free[0]
        free.remove(slots[sign])
    return slots


def init_feature_reduction(state: FactorState, next_state: FactorState) -> None:
    """Switches feature-space reduction on for a layer pair, in place.

    Output coordinates with the same ``(p_index, sign(p_coef))`` share one
    feature slot ``act(sign * z[p_index])`` and the next layer reads
    coordinate k as ``|p_coef[k]| * feature[slot]``. Slots are numbered in
    order of first use; the others are marked dead. Shapes do not change and,
    for a ReLU-family activation, neither does the function. With P = I (a
    fresh layer) nothing changes at all.

    Args:
        state: The layer whose features are reduced, modified in place.
        next_state: The layer reading them, modified in place.

    Raises:
        ConfigError: If ``next_state.in_index`` does not have one entry per
            output coordinate of ``state``, or ``state`` has fewer feature
            slots than distinct (group, sign) pairs.
    """
    _check_features(state, next_state)
    keys = _slot_key(state.p_index, state.p_coef)
    unique, first, inverse = np.unique(
        keys, axis=0, return_index=True, return_inverse=True
    )
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    if len(unique) > len(state.feature_group):
        raise ConfigError(
            f"Expected state with at least {len(unique)} feature slots. "
            f"Received: state with {len(state.feature_group)}"
        )
    state.feature_group[:] = 0
    state.feature_scale[:] = 0.0
    state.feature_group[rank] = unique[:, 0]
    state.feature_scale[rank] = unique[:, 1]
    next_state.in_index[:] = rank[inverse.ravel()]
    next_state.in_scale[:] = np.abs(state.p_coef)


# --------------------------------------------------------------------------
# Compaction and counts.


def _live_map(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(live indices, old -> new map with -1 for dead)``."""
    live = np.flatnonzero(mask)
    mapping = np.full(len(mask), -1, dtype=np.int64)
    mapping[live] = np.arange(len(live))
    return live, mapping


def _remap(
    index: np.ndarray, coef: np.ndarray, mapping: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Maps indices through ``mapping``; entries mapped to -1 get (0, 0.0)."""
    new = mapping[index]
    dead = new < 0
    return (
        np.where(dead, 0, new).astype(index.dtype),
        np.where(dead, 0.0, coef).astype(coef.dtype),
    )


def _compact_groups(state: FactorState) -> tuple[FactorState, np.ndarray]:
    """Returns the state without dead groups and the row-group old -> new map."""
    cols, col_map = _live_map(state.col_mask)
    rows, row_map = _live_map(state.row_mask)
    new = state.copy()
    new.kernel = state.kernel[cols][:, rows].copy()
    new.bias = None if state.bias is None else state.bias[rows].copy()
    new.col_mask = np.ones(len(cols), dtype=state.col_mask.dtype)
    new.row_mask = np.ones(len(rows), dtype=state.row_mask.dtype)
    new.q_index, new.q_coef = _remap(state.q_index, state.q_coef, col_map)
    new.p_index, new.p_coef = _remap(state.p_index, state.p_coef, row_map)
    return new, row_map


def _is_unreduced(state: FactorState) -> bool:
    """True when features are the output coordinates (no reduction)."""
    return (
        state.feature_group.shape == state.p_index.shape
        and np.array_equal(state.feature_group, state.p_index)
        and np.array_equal(state.feature_scale, state.p_coef)
    )


def _check_links(states: list[FactorState], links: Mapping) -> dict[int, int]:
    """Returns ``links`` as ``{producer: consumer}`` ints after checking it.

    Every key and value must index ``states``; a link joins two different
    states, the producer's output coordinates one-to-one to the consumer's
    input channels; a state reads the features of one producer at most; and
    every state with a reduced feature space is a producer.
    """
    if not isinstance(links, Mapping):
        raise ConfigError(
            "Expected links to be a mapping {producer index: consumer index}. "
            f"Received: links={links!r}"
        )
    checked: dict[int, int] = {}
    for producer, consumer in links.items():
        if not all(
            _is_index(value) and 0 <= value < len(states)
            for value in (producer, consumer)
        ):
            raise ConfigError(
                f"Expected links to map state indices in [0, {len(states) - 1}] "
                f"to state indices. Received: links={links!r}"
            )
        if producer == consumer:
            raise ConfigError(
                "Expected links to join two different states. Received: "
                f"links={links!r} (state {producer} linked to itself)"
            )
        outputs = len(states[producer].p_index)
        channels = len(states[consumer].in_index)
        if outputs != channels:
            raise ConfigError(
                f"Expected state {consumer} to have one input channel per output "
                f"coordinate of state {producer} ({outputs}). Received: "
                f"links={links!r}, state {consumer} with len(in_index)={channels}"
            )
        checked[int(producer)] = int(consumer)
    consumers = list(checked.values())
    for consumer in consumers:
        if consumers.count(consumer) > 1:
            raise ConfigError(
                f"Expected at most one producer per consumer. Received: "
                f"links={links!r}, with {consumers.count(consumer)} producers "
                f"for state {consumer}"
            )
    for i, state in enumerate(states):
        if i not in checked and not _is_unreduced(state):
            raise ConfigError(
                f"Expected links to have an entry for state {i}: it has a reduced "
                f"feature space. Received: links={links!r}"
            )
    return checked


def compact(states: list[FactorState], links: Mapping) -> list[FactorState]:
    """Returns new, smaller states without dead groups and dead feature slots.

    Dead column and row groups are removed and ``q_index`` / ``p_index``
    renumbered. For a linked layer (``links[i] = j``: layer j reads layer i's
    features through feature-space reduction) dead feature slots are
    removed, ``feature_group`` renumbered, and layer j's ``in_index`` pointed
    at the surviving slots. An unlinked layer keeps one feature per output
    coordinate (``feature_group = p_index``, ``feature_scale = p_coef``) and
    the in-mappings of the layers reading it are untouched. The original
    numbers of input and output coordinates (lengths of q, p, in arrays)
    never change, and neither does the function the network computes. The
    input states are not modified.

    Args:
        states: The factorized layers of a network, in any fixed order.
        links: ``{producer index: consumer index}`` into ``states``, one
            entry per pair joined by feature-space reduction.

    Returns:
        The compacted states, one per input state.

    Raises:
        ConfigError: If ``links`` is not such a mapping (an index out of
            range, a state linked to itself, two producers for one consumer,
            a consumer whose input channels do not match the producer's
            outputs) or leaves a layer with a reduced feature space unlinked.
    """
    links = _check_links(states, links)
    compacted = [_compact_groups(state) for state in states]
    new_states = [new for new, _ in compacted]
    for i, (new, row_map) in enumerate(compacted):
        if i in links:
            _compact_features(states[i], new, row_map, new_states[links[i]])
        else:
            new.feature_group = new.p_index.copy()
            new.feature_scale = new.p_coef.copy()
    return new_states


def _compact_features(
    old: FactorState, new: FactorState, row_map: np.ndarray, next_new: FactorState
) -> None:
    """Drops dead feature slots of ``new`` and remaps ``next_new.in_index``.

    A live slot of a dead row group computes ``act(0) = 0`` and is dropped.
    """
    groups = row_map[old.feature_group]
    alive = (old.feature_scale != 0) & (groups >= 0)
    slot_mask = alive.astype(np.float32)
    slots, slot_map = _live_map(slot_mask)
    new.feature_group = groups[slots].astype(old.feature_group.dtype)
    new.feature_scale = old.feature_scale[slots].copy()
    next_new.in_index, next_new.in_scale = _remap(
        next_new.in_index, next_new.in_scale, slot_map
    )


def live_counts(state: FactorState) -> dict[str, int]:
    """Returns the live sizes of a layer.

    Args:
        state: The layer.

    Returns:
        ``{"groups_in": n', "groups_out": m', "features_out": live feature
        slots}`` counting only live (unmasked, non-zero-scale) entries.
    """
    return {
        "groups_in": int(np.count_nonzero(state.col_mask)),
        "groups_out": int(np.count_nonzero(state.row_mask)),
        "features_out": int(np.count_nonzero(state.feature_scale)),
    }
