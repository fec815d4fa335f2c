"""Face animation backends, one module each; heavy imports stay inside them."""
