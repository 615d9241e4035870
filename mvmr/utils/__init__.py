"""The bottom layer: helpers that know nothing of images, models or training.

Nothing here imports from mvmr except :mod:`mvmr.errors`, so every other layer may use it.

- :mod:`mvmr.utils.atomic`: write a file so that readers see the old or the new one, never a part;
- :mod:`mvmr.utils.distributed`: the process group (one process, or every rank) for once-per-run work.
"""
