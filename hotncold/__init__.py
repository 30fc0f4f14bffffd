"""hotncold: how sampling temperature changes test-time compute scaling on math problems."""

__version__ = "0.1.0"
