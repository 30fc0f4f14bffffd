"""Sweeps at scale: a sweep's jobs, Slurm and submitit state, status and resubmission, shards."""
