"""hotncold's Hydra sweeper plugin (`hydra/sweeper=union`): see union_sweeper.py.

Hydra builds a sweeper only from a class of the `hydra_plugins` namespace package (no
`hydra_plugins/__init__.py` anywhere: other plugins, e.g. hydra-submitit-launcher, share it).
"""
