"""The arithmetic of a GAN update, with no I/O: batches, the pair convention, losses,
penalties, clippers, augmentations, the EMA, optimisers, and the D and G steps.

Everything here is a function of tensors and networks; the collectives it calls are no-ops
in one process. Nothing here reads a config file, writes a file or knows about a run.
"""
