"""A bank of K probe heads of one kind, run in one pass, and the bank a probe config asks for.

Heads sharing a seed start from identical weights, so an lr x wd grid (``grid_specs``) compares
optimisation settings only. ``ProbeBank`` stacks the parameters of its K heads and runs
``stacked_forward`` once, so every matmul is one batched kernel over the heads and the tokens are read
once. The heads keep separate parameters, so one AdamW with one parameter group per head (and the summed
loss) steps each head exactly like its own optimizer would (no global clipping, no shared scaler).
Self-attention blocks hold K copies of every activation: ``heads_per_pass`` splits the bank into chunks
when that memory matters (same results, the tokens are then read once per chunk).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from echojepa.probe.heads import AttentiveProbe, LinearProbe, MLPProbe, StackableHead
from echojepa.probe.multiview import LateFusionProbe, MultiViewProbe
from echojepa.probe.stacked import Params
from echojepa.probe.task import ProbeTask


@dataclass(frozen=True)
class HeadSpec:
    """Hyper-parameters of one head. Heads sharing a seed start from identical weights, so the lr x wd grid
    compares optimisation settings only."""

    lr: float
    wd: float
    seed: int = 0


def grid_specs(lrs: Sequence[float], wds: Sequence[float], seeds: Sequence[int] = (0,)) -> list[HeadSpec]:
    """Heads for every (lr, wd, seed), ordered lr-major."""
    return [HeadSpec(float(lr), float(wd), int(s)) for lr, wd, s in itertools.product(lrs, wds, seeds)]


def head_class(kind: str) -> type[StackableHead]:
    kinds: dict[str, type[StackableHead]] = {
        "attentive": AttentiveProbe, "linear": LinearProbe, "mlp": MLPProbe,
        "multiview": MultiViewProbe, "late_fusion": LateFusionProbe,
    }  # fmt: skip
    if kind not in kinds:
        raise ValueError(f"unknown probe kind {kind!r}; valid: {', '.join(sorted(kinds))}")
    return kinds[kind]


class ProbeBank(nn.Module):
    """K heads of one kind and architecture, run in one pass: ``forward(...) -> [K, B, out_dim]``."""

    def __init__(
        self,
        kind: str,
        head_kwargs: Mapping[str, Any],
        specs: Sequence[HeadSpec],
        heads_per_pass: int | None = None,
    ) -> None:
        super().__init__()
        if not specs:
            raise ValueError("a ProbeBank needs at least one head spec")
        if heads_per_pass is not None and heads_per_pass < 1:
            raise ValueError(f"heads_per_pass must be >= 1 or None, got {heads_per_pass}")
        # None: all heads in one pass. A smaller chunk bounds activation memory (K copies of every
        # self-attention activation) at the price of reading the tokens once per chunk.
        self.heads_per_pass = heads_per_pass
        self.kind = kind
        self.specs = [s if isinstance(s, HeadSpec) else HeadSpec(**s) for s in specs]
        cls = head_class(kind)
        heads = []
        for spec in self.specs:
            # each head's init depends on its own seed only, not on its position in the bank
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(spec.seed)
                heads.append(cls(**head_kwargs))
        self.heads = nn.ModuleList(heads)
        self.head_kwargs = dict(heads[0].config)
        self.out_dim = heads[0].out_dim
        self.register_buffer("trained_steps", torch.zeros((), dtype=torch.long))
        self.task: ProbeTask | None = None

    def __len__(self) -> int:
        return len(self.heads)

    def stacked_params(self, heads: Sequence[nn.Module] | None = None) -> Params:
        heads = list(self.heads) if heads is None else heads
        names = [n for n, _ in heads[0].named_parameters()]
        per_head = [dict(h.named_parameters()) for h in heads]
        return {n: torch.stack([p[n] for p in per_head]) for n in names}

    def forward(
        self,
        tokens: Tensor,
        key_padding_mask: Tensor | None = None,
        presence: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        chunk = self.heads_per_pass or len(self.heads)
        outs = [
            self.heads[0].stacked_forward(
                self.stacked_params(self.heads[i : i + chunk]), tokens, key_padding_mask, presence, generator
            )
            for i in range(0, len(self.heads), chunk)
        ]  # each pass draws its own view dropout (multi-view heads)
        return outs[0] if len(outs) == 1 else torch.cat(outs)  # [K, B, out]

    def param_groups(self) -> list[dict[str, Any]]:
        """Per head: one group with its lr/wd on weights, one with its lr and no decay on biases and 1-D
        parameters (norms). Tagged with ``head`` so schedules can be set per head."""
        groups = []
        for k, (spec, head) in enumerate(zip(self.specs, self.heads)):
            decay, no_decay = [], []
            for name, p in head.named_parameters():
                (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
            groups.append({"params": decay, "lr": spec.lr, "weight_decay": spec.wd, "head": k})
            groups.append({"params": no_decay, "lr": spec.lr, "weight_decay": 0.0, "head": k})
        return groups

    def set_projection(self, shift: np.ndarray | Tensor, weight: np.ndarray | Tensor) -> None:
        """Give every head the same fixed token projection (``echojepa.probe.project``): shift [in_dim],
        weight [in_dim, embed_dim]. The heads must have been built with ``in_dim``."""
        for head in self.heads:
            if head.input_map is None:
                raise ValueError("this bank's heads were built without in_dim: they take no projection")
            head.input_map.set(shift, weight)

    def trainable_parameters(self) -> int:
        """Trainable parameters of one head (the fixed projection is a buffer and does not count)."""
        return sum(p.numel() for p in self.heads[0].parameters() if p.requires_grad)

    def describe(self) -> dict[str, Any]:
        """What every backbone's probe is, for records: kind, width, input width, depth, position code,
        token grid, spatial pooling, motion tokens, trainable parameters per head and number of heads."""
        h = self.head_kwargs
        return {
            "kind": self.kind, "width": int(h["embed_dim"]), "in_dim": h.get("in_dim"),
            "depth": h.get("depth"), "position": h.get("position"), "token_grid": h.get("token_grid"),
            "space_grid": h.get("space_grid"), "motion": bool(h.get("motion", False)),
            "trainable_params": self.trainable_parameters(),
            "heads": len(self),
        }  # fmt: skip

    def export_head(self, k: int) -> StackableHead:
        """A standalone copy of head k (same forward, [B, out_dim])."""
        return copy.deepcopy(self.heads[k])

    def arch(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "head_kwargs": dict(self.head_kwargs),
            "specs": [asdict(s) for s in self.specs],
        }


# Probe kinds that attend over tokens, hence take a position code over the backbone's token grid.
ATTENTIVE_KINDS = frozenset({"attentive", "multiview", "late_fusion"})


def build_probe_bank(
    cfg: Mapping[str, Any],
    embed_dim: int,
    out_dim: int,
    token_grid: Sequence[int] | None = None,
) -> ProbeBank:
    """A bank from a conf/probe/*.yaml mapping (kind, head, grid {lr, wd, seeds}, heads_per_pass, width).

    ``embed_dim`` is the backbone's token width. With ``width`` set, heads are built at that width and
    take the backbone's tokens through a fixed projection (``in_dim = embed_dim``; fit it with
    ``ProbeBank.set_projection``), so every backbone gets the same head; attentive kinds also get the
    backbone's ``token_grid`` for their position code. Without ``width`` the heads are built at the
    backbone's width (no projection)."""
    grid = cfg["grid"]
    specs = grid_specs(grid["lr"], grid["wd"], grid.get("seeds", (0,)))
    kwargs = dict(cfg.get("head") or {})
    width = cfg.get("width")
    kwargs.update(out_dim=int(out_dim))
    if width is None:
        kwargs.update(embed_dim=int(embed_dim))
    else:
        kwargs.update(embed_dim=int(width), in_dim=int(embed_dim))
    kind = str(cfg["kind"])
    if kind in ATTENTIVE_KINDS and token_grid is not None:
        kwargs.update(token_grid=[int(g) for g in token_grid])
    return ProbeBank(kind, kwargs, specs, heads_per_pass=cfg.get("heads_per_pass"))
