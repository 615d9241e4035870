"""Image transforms shared by the data pipeline and the representations (pure torch).

- :class:`PaperAugmentation`: the paper's augmentation of one image (section 7);
- :func:`augment_batch`: the same, drawn independently for every image of a batch, one by one;
- :class:`BatchAugmentation`: the same distribution for a whole batch at once, on its device;
- :mod:`mvmr.transforms.normalization`: the ImageNet and "half" mean/std, defined once.
"""

from mvmr.transforms.augmentation import (
    PARAMETER_COLUMNS,
    PaperAugmentation,
    augment_batch,
    parameters_to_vector,
    vector_to_parameters,
)
from mvmr.transforms.batched import BatchAugmentation

__all__ = [
    "BatchAugmentation",
    "PARAMETER_COLUMNS",
    "PaperAugmentation",
    "augment_batch",
    "parameters_to_vector",
    "vector_to_parameters",
]
