"""ASR backends, one module each; heavy imports stay inside them."""
