"""One experiment end to end: validate, run, record (`python -m hotncold` calls `run.run`)."""
