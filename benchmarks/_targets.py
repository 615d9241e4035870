"""The paper's five hand-crafted representations as a config override, with chosen objectives and views."""

from __future__ import annotations

#: the paper's settings of each representation (configs/cifar10.yaml, configs/demo.yaml)
_KWARGS = {"scatnet": "{J: 2, L: 8}", "hog": "{orientations: 24, cell: 8}", "local_std": "{kernel: 3}"}


def paper_items(**objectives: str) -> str:
    """``representations.items=[...]``: pixels, ScatNet, augmented pixels, HOG and local std with the
    paper's settings; ``name="objective"`` or ``name="objective@view"`` changes how one is learnt."""
    items = []
    for name in ("pixels", "scatnet", "augmented_pixels", "hog", "local_std"):
        spec = [f"name: {name}"] + ([f"kwargs: {_KWARGS[name]}"] if name in _KWARGS else [])
        if name in objectives:
            objective, _, view = objectives[name].partition("@")
            spec += [f"objective: {objective}"] + ([f"view: {view}"] if view else [])
        items.append("{" + ", ".join(spec) + "}")
    return "representations.items=[" + ", ".join(items) + "]"
