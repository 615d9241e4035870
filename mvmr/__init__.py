"""mvmr: MV-MR self-supervised learning and label-free distillation with distance correlation.

The library is layered (imports point downward only):

- ``mvmr.losses``: distance correlation and the MV-MR loss, pure PyTorch.
- ``mvmr.representations``: hand-crafted and teacher representations as ``nn.Module`` s, and a cache.
- ``mvmr.models``, ``mvmr.data``: encoders, projectors, datasets and views.
- ``mvmr.training``, ``mvmr.evaluation``: the Lightning trainer and the evaluation protocols.
- ``mvmr.cli``: the ``mvmr`` command, which only parses and dispatches.
"""

__version__ = "0.1.0"
