"""Example 2: a loss the plugin does not ship (Tversky), mixed with cross-entropy, with WMLA weights.

Any ``torch.nn.Module`` whose ``forward(logits, target)`` returns a scalar is a loss for ``LossPlugTrainer``:
it receives raw logits ``(B, K, *spatial)`` and nnU-Net's target, a label map ``(B, 1, *spatial)``, once per
deep-supervision output (the target downsampled to that output). A loss that also wants an RW map declares
``inputs = ("target", "rw_map")`` and takes ``forward(logits, target, rw_map)``.

Here the Tversky loss (Salehi et al., MLMI 2017) with α = 0.3 on false positives and β = 0.7 on false
negatives is summed with the plugin's cross-entropy (``LossMixture``, Valverde & Tohka 2022 Sec. 4.4 "equal") and
weighted over the decoder resolutions with Nguyen et al.'s (2019) best WMLA weights (1, 0.1, 0.01) (Table I).

Use: list this folder in nnUNet_extTrainer, then::

    nnUNetv2_train DATASET 2d 0 -tr nnUNetTrainerTverskyCE
"""

from typing import ClassVar

import torch
from torch import Tensor, nn

from nnunet_lossplug.losses import CrossEntropyLoss, LossMixture
from nnunet_lossplug.nnunet import LossPlugTrainer, LossSpec, adam


class TverskyLoss(nn.Module):
    """Tversky loss on the softmax, sums over the batch and the voxels (Salehi et al. 2017, eq. 3).

    With ``s = softmax(logits)``, ``y`` the one-hot target and the sums over images b and voxels i::

        TP_k = Σ s_k y_k,   FP_k = Σ s_k (1 - y_k),   FN_k = Σ (1 - s_k) y_k
        T_k  = (TP_k + smooth) / (TP_k + α FP_k + β FN_k + smooth)
        L    = 1 - mean_k T_k          (k over the foreground classes, or all with do_bg=True)

    Defaults: α = 0.3, β = 0.7 (the paper's best: false negatives cost more, recall goes up); α = β = 0.5 is
    the soft Dice loss with batch sums. ``smooth`` = 1e-5 (nnU-Net's Dice smoothing) keeps an empty class
    finite. ``target``: label map ``(B, 1, *spatial)`` or one-hot ``(B, K, *spatial)``.
    """

    inputs: ClassVar[tuple[str, ...]] = ("target",)  # what forward takes after the logits
    nonnegative: ClassVar[bool] = True  # T_k <= 1, so L >= 0 (needed for trainable WMLA weights)

    def __init__(self, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1e-5, do_bg: bool = False):
        super().__init__()
        if alpha < 0 or beta < 0 or alpha + beta == 0 or smooth < 0:
            raise ValueError(f"need alpha, beta >= 0, not both 0, and smooth >= 0; "
                             f"got alpha={alpha!r}, beta={beta!r}, smooth={smooth!r}.")
        self.alpha, self.beta, self.smooth, self.do_bg = float(alpha), float(beta), float(smooth), bool(do_bg)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        batch, classes, *spatial = logits.shape
        if target.ndim != logits.ndim or target.shape[0] != batch or list(target.shape[2:]) != spatial \
                or target.shape[1] not in (1, classes):
            raise ValueError(f"target must be (B, 1, *spatial) or (B, K, *spatial) for logits of shape "
                             f"{tuple(logits.shape)}; got {tuple(target.shape)}.")
        probs = torch.softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=1)
        if target.shape[1] == 1:
            onehot = torch.zeros_like(probs).scatter_(1, target.long(), 1.0)
        else:
            onehot = target.to(probs.dtype)
        axes = [0, *range(2, logits.ndim)]
        tp = (probs * onehot).sum(axes)
        fp = (probs * (1 - onehot)).sum(axes)
        fn = ((1 - probs) * onehot).sum(axes)
        tversky = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        return 1 - (tversky if self.do_bg else tversky[1:]).mean()


class nnUNetTrainerTverskyCE(LossPlugTrainer):
    """Tversky (α = 0.3, β = 0.7) + cross-entropy at every output, WMLA weights (1, 0.1, 0.01), Adam 3e-4."""

    loss_spec = LossSpec(LossMixture, first=LossSpec(TverskyLoss, alpha=0.3, beta=0.7),
                         second=LossSpec(CrossEntropyLoss))
    ds_weights = (1.0, 0.1, 0.01)
    optimizer_spec = adam(lr=3e-4)
    grad_clip = 5.0
    epochs = 300
