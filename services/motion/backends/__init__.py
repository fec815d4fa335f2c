"""Motion backends, implementing the interfaces of ``base``: the VQ-VAE tokenizers with their
feature pipeline (``codec``, ``checkpoints``, ``vqvae``) and text-to-motion retrieval from the
clip library (``retrieval``)."""
