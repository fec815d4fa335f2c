"""ASR backends, one module each, implementing the interfaces of ``base``; heavy imports stay
inside them."""
