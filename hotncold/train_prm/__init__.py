"""Train a PRM with stepwise supervision: `python -m hotncold.train_prm train=...`."""
