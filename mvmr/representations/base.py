"""The representation interface and the registry that builds representations by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch
from torch import nn

from mvmr.plugins import Registry

__all__ = ["Representation", "register", "build", "available"]


class Representation(nn.Module):
    """A fixed map from a float image batch (B, C, H, W) in [0, 1] to features (B, D).

    Subclasses set ``name`` (the registry key, also the key of the loss term) and
    ``deterministic`` (True when the same image always gives the same features, so that
    :class:`~mvmr.cache.FeatureCache` may store them). A representation never needs
    gradients: call it under ``torch.no_grad()``.
    """

    name: str = "representation"
    deterministic: bool = True

    def output_dim(self, channels: int, height: int, width: int) -> int:
        """The feature dimension D for images of this shape (raises ValueError if too small)."""
        raise NotImplementedError

    @staticmethod
    def check_images(images: torch.Tensor) -> None:
        """Raise a clear ValueError unless ``images`` is a float (B, C, H, W) batch."""
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor image batch, got {type(images).__name__}")
        if images.ndim != 4:
            raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(images.shape)}")
        if not images.is_floating_point():
            raise ValueError(f"expected float images in [0, 1], got dtype {images.dtype}")

    def config(self) -> dict[str, Any]:
        """The settings that change this representation's output, as JSON-serialisable values.

        :class:`~mvmr.cache.FeatureCache` stores them in its manifest and refuses a cache whose
        settings differ (a stale cache). Override it to list your settings; the default identifies the
        module by its ``repr`` (its ``extra_repr`` and its children), which is safe but brittle: a
        changed ``repr`` makes earlier caches stale.
        """
        return {"repr": repr(self)}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, deterministic={self.deterministic}"


#: Representation factories by name: ``@register(name)``, and ``mvmr.representations`` entry points.
REPRESENTATIONS: Registry[Callable[..., Representation]] = Registry("representation", "mvmr.representations")
R = TypeVar("R", bound=Callable[..., Representation])


def register(name: str) -> Callable[[R], R]:
    """Class decorator: make a representation buildable by ``name`` (also from configs).

    >>> @register("edges")
    ... class Edges(Representation):
    ...     name = "edges"
    ...     def forward(self, images): ...
    """

    def decorator(factory: R) -> R:
        REPRESENTATIONS.register(name, factory)
        return factory

    return decorator


def build(name: str, **kwargs: object) -> Representation:
    """Build a registered representation by name, e.g. ``build("hog", orientations=24)``.

    A name registered by an installed package's ``mvmr.representations`` entry point is loaded on
    first use (see :mod:`mvmr.plugins`).
    """
    rep = REPRESENTATIONS.get(name)(**kwargs)
    rep.name = name
    return rep


def available() -> list[str]:
    """Names of the registered (and installed plugin) representations, sorted."""
    return REPRESENTATIONS.names()
