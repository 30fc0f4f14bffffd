"""Developer tools that are not part of the hotncold package."""
