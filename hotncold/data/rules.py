"""The rules of the `dataset` settings that their types cannot express (run by
`hotncold.experiment.validate` before anything loads; loading finds the rest, e.g. a missing
column, before any model loads)."""

from __future__ import annotations

from hotncold.config import ConfigError, DatasetConfig

DATASET_SOURCES = ("arithmetic", "hub", "file")


def check_dataset(d: DatasetConfig) -> None:
    """Raise ConfigError naming the fix for a selection that can hold no problem."""
    if d.source not in DATASET_SOURCES:
        raise ConfigError(
            f"dataset.source={d.source!r} is unknown; use one of {', '.join(DATASET_SOURCES)}"
        )
    if d.source in ("hub", "file") and not d.path:
        raise ConfigError(f"dataset.source={d.source} needs dataset.path (a hub id or a file)")
    if d.start < 0:
        raise ConfigError(f"dataset.start={d.start} must be 0 or more")
    if d.limit is not None and d.limit < 1:
        raise ConfigError(f"dataset.limit={d.limit} selects nothing; set it to 1 or more (or null)")
    if d.num_shards < 1:
        raise ConfigError(f"dataset.num_shards={d.num_shards} must be at least 1")
    if not 0 <= d.shard < d.num_shards:
        raise ConfigError(
            f"dataset.shard={d.shard} is outside 0..{d.num_shards - 1} "
            f"for num_shards={d.num_shards}"
        )
    if d.per_level < 1:
        raise ConfigError("dataset.per_level must be at least 1")
    if d.levels is not None and not d.levels:
        raise ConfigError("dataset.levels is empty; list levels to keep or set it to null")
