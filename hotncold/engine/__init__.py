"""Generation: the request types search code speaks, prompts, and the vLLM engine behind them."""
