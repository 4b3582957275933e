"""Representation losses shared by pretraining and by the attacks that reuse a model's own loss."""

from rmqm.losses.contrastive import (
    NT_XENT_REDUCTIONS,
    nt_xent_loss,
    semi_hard_triplet_loss,
    vicreg_loss,
)
from rmqm.losses.metric_learning import (
    pair_nt_xent_loss,
    pair_triplet_loss,
    triplet_entropy_loss,
    triplet_margin_loss,
)

__all__ = ['NT_XENT_REDUCTIONS', 'nt_xent_loss', 'semi_hard_triplet_loss', 'vicreg_loss', 'triplet_margin_loss',
           'triplet_entropy_loss', 'pair_nt_xent_loss', 'pair_triplet_loss']
