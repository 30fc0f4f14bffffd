"""The checked contract between hotncold and CUDA vLLM: see README.md here."""
