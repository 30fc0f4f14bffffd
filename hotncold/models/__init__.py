"""Model preparation: turning packaged weights into folders vLLM can load."""
