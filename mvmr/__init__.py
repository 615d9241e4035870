"""mvmr: MV-MR self-supervised learning and label-free distillation with distance correlation.

The library is layered (imports point downward only):

- ``mvmr.losses``: distance correlation and the MV-MR loss, pure PyTorch.
- ``mvmr.representations``: hand-crafted and teacher representations as ``nn.Module`` s, and a cache.
- ``mvmr.models``, ``mvmr.data``: encoders, projectors, datasets and views.
- ``mvmr.training``, ``mvmr.evaluation``: the Lightning trainer and the evaluation protocols.
- ``mvmr.cli``: the ``mvmr`` command, which only parses and dispatches.

``mvmr.from_pretrained(path_or_repo)`` loads an exported encoder (a ``mvmr export --format hf``
folder, a Hugging Face Hub repository, or a backbone file); it is imported on first use, so that
``import mvmr`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "from_pretrained"]


def __getattr__(name: str) -> Any:  # lazy: the loader imports torch and huggingface_hub
    if name == "from_pretrained":
        try:
            from mvmr.models.hub import from_pretrained
        except ImportError as exc:
            raise ImportError(f"mvmr.from_pretrained needs huggingface_hub: pip install 'mvmr[hub]' ({exc})") from exc
        return from_pretrained
    raise AttributeError(f"module 'mvmr' has no attribute {name!r}")
