"""LLM engines, one module each; heavy imports stay inside them."""
