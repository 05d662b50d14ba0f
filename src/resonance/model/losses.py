"""Contrastive losses on L2-normalised embeddings (batch, dim), and a MoCo-style queue of extra negatives.

Similarities are cosine similarities (dot products of unit vectors); `temperature` divides them (SimCLR uses
~0.05-0.5). Every loss returns a scalar tensor (mean over anchors) and raises ValueError on mismatched shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_embeddings(z: torch.Tensor, name: str) -> None:
    if z.ndim != 2 or z.shape[0] < 1 or not z.is_floating_point():
        raise ValueError(f"{name}: expected float embeddings (batch, dim), got {z.dtype} {tuple(z.shape)}")


def _check_pair(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> None:
    _check_embeddings(z1, "z1")
    _check_embeddings(z2, "z2")
    if z1.shape != z2.shape:
        raise ValueError(f"z1 and z2 must have the same shape (two views of the same batch), got "
                         f"{tuple(z1.shape)} and {tuple(z2.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")


def _check_labels(z: torch.Tensor, labels: torch.Tensor) -> None:
    _check_embeddings(z, "z")
    if labels.ndim != 1 or labels.shape[0] != z.shape[0]:
        raise ValueError(f"labels must be (batch,) = ({z.shape[0]},), got {tuple(labels.shape)}")


def _pair_logits(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(2N, 2N) similarity logits of the stacked views with self-similarity masked out, and each row's target."""
    z = torch.cat([z1, z2], dim=0)
    n = z1.shape[0]
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return logits, targets


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent. z1, z2: (N, dim) two views of the same N items (row i of z1 and of z2 are positives).

    Each of the 2N views is an anchor: cross-entropy of its positive against the other 2N - 2 views (in-batch
    negatives), mean over the 2N anchors. Scalar; log(2N - 1) for uninformative (all-equal) embeddings.
    """
    _check_pair(z1, z2, temperature)
    logits, targets = _pair_logits(z1, z2, temperature)
    return F.cross_entropy(logits, targets)


def supcon(z: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out). z: (B, dim); labels: (B,) ints, same = positive.

    For anchor i with positives P(i) (same label, j != i): -mean_{p in P(i)} log softmax_{a != i}(s_ia / T)[p];
    mean over the anchors that have at least one positive. ValueError if no anchor has one.
    """
    _check_labels(z, labels)
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    self_mask = torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    logits = (z @ z.T / temperature).masked_fill(self_mask, float("-inf"))
    log_prob = torch.log_softmax(logits, dim=1).masked_fill(self_mask, 0.0)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positive.sum(dim=1)
    has_pos = n_pos > 0
    if not has_pos.any():
        raise ValueError("supcon: no anchor has a positive (every label occurs once in the batch)")
    per_anchor = -(log_prob * positive).sum(dim=1)[has_pos] / n_pos[has_pos]
    return per_anchor.mean()


def triplet_hard(z: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    """Batch-hard triplet loss (Hermans et al. 2017). z: (B, dim) unit vectors; labels: (B,); margin in distance.

    Distances are Euclidean, d = sqrt(2 - 2 cos) in [0, 2]. Per anchor: relu(max d(positive) - min d(negative)
    + margin), mean over anchors having both a positive (same label, j != i) and a negative. ValueError if none.
    """
    _check_labels(z, labels)
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    dist = torch.sqrt((2.0 - 2.0 * (z @ z.T)).clamp(min=1e-12))
    same = labels[:, None] == labels[None, :]
    positive = same & ~torch.eye(z.shape[0], dtype=torch.bool, device=z.device)
    negative = ~same
    valid = positive.any(dim=1) & negative.any(dim=1)
    if not valid.any():
        raise ValueError("triplet_hard: no anchor has both a positive and a negative in the batch")
    hardest_pos = dist.masked_fill(~positive, float("-inf")).max(dim=1).values
    hardest_neg = dist.masked_fill(~negative, float("inf")).min(dim=1).values
    return F.relu(hardest_pos - hardest_neg + margin)[valid].mean()


class MemoryQueue(nn.Module):
    """FIFO of the last `size` (detached) embeddings of dimension `dim`, used as extra negatives (MoCo).

    Buffers (follow .to(device), saved in the state dict): `bank` (size, dim), `ids` (size,) the group each
    entry came from (-1: none given), `ptr` (next slot), `count` (filled slots). `enqueue` after the optimiser step
    with the batch's embeddings; `items()` reads them oldest first.
    """

    def __init__(self, dim: int, size: int) -> None:
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"MemoryQueue: need dim >= 1 and size >= 1, got dim={dim}, size={size}")
        self.dim, self.size = dim, size
        self.register_buffer("bank", torch.zeros(size, dim))
        self.register_buffer("ids", torch.full((size,), -1, dtype=torch.long))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def __len__(self) -> int:
        return int(self.count)

    @torch.no_grad()
    def enqueue(self, z: torch.Tensor, ids: torch.Tensor | None = None) -> None:
        """Append z (B, dim) (detached), each with its group id from ids (B,) (None: -1, no group); when full, the
        oldest entries are overwritten. B > size keeps the last."""
        _check_embeddings(z, "z")
        if z.shape[1] != self.dim:
            raise ValueError(f"MemoryQueue: expected embeddings of dim {self.dim}, got {tuple(z.shape)}")
        if ids is not None and tuple(ids.shape) != (z.shape[0],):
            raise ValueError(f"MemoryQueue: ids must be ({z.shape[0]},), got {tuple(ids.shape)}")
        ids = torch.full((z.shape[0],), -1, dtype=torch.long) if ids is None else ids.long()
        z, ids = z.detach()[-self.size:].to(self.bank), ids[-self.size:].to(self.ids)
        slots = (int(self.ptr) + torch.arange(z.shape[0])) % self.size
        self.bank[slots.to(self.bank.device)] = z
        self.ids[slots.to(self.ids.device)] = ids
        self.ptr.fill_((int(self.ptr) + z.shape[0]) % self.size)
        self.count.fill_(min(self.size, int(self.count) + z.shape[0]))

    def _order(self) -> torch.Tensor:
        n, ptr = len(self), int(self.ptr)
        return (torch.arange(ptr - n, ptr) % self.size).to(self.bank.device)

    def items(self) -> torch.Tensor:
        """The queued embeddings, oldest first: (len(self), dim), no gradient."""
        return self.bank[self._order()]

    def item_ids(self) -> torch.Tensor:
        """The queued entries' group ids, oldest first: (len(self),) int64 (-1: none given)."""
        return self.ids[self._order()]


def nt_xent_with_queue(z1: torch.Tensor, z2: torch.Tensor, queue: MemoryQueue, temperature: float,
                       ids: torch.Tensor | None = None) -> torch.Tensor:
    """NT-Xent (see `nt_xent`) whose negatives are the in-batch ones plus every queued embedding.

    z1, z2: (N, dim). Logits per anchor: 2N - 1 in-batch + len(queue) queue columns. Equals `nt_xent` when the
    queue is empty. With ids (N,), the group of each pair (e.g. the stretch of music it was cut from), a queued
    entry of the anchor's own group is no negative (its column is masked): a neighbouring window of the same
    music is not another song. It does not enqueue: call queue.enqueue(...) after the step (so a batch is never
    its own negative).
    """
    _check_pair(z1, z2, temperature)
    if z1.shape[1] != queue.dim:
        raise ValueError(f"embeddings have dim {z1.shape[1]} but the queue holds dim {queue.dim}")
    logits, targets = _pair_logits(z1, z2, temperature)
    negatives = queue.items().to(z1)
    if negatives.shape[0]:
        extra = torch.cat([z1, z2]) @ negatives.T / temperature  # (2N, len(queue))
        if ids is not None:
            own = ids.to(queue.ids.device).repeat(2)[:, None] == queue.item_ids()[None, :]
            extra = extra.masked_fill(own.to(extra.device), float("-inf"))
        logits = torch.cat([logits, extra], dim=1)
    return F.cross_entropy(logits, targets)
