"""The ``solami`` command line."""
