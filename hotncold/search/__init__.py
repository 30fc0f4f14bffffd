"""Test-time search approaches behind one interface, `Approach.solve(problems, prompts, ctx)`."""
