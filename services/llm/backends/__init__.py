"""LLM backends, one module each, implementing the interface of ``base``; heavy imports stay
inside them."""
