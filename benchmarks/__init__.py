"""`make bench`: the framework measured against raw vLLM, side by side in one process."""
