"""The operations of ``solami call``, one module per service: each defines
``add_arguments(parser)`` and ``call(args, channel) -> dict`` over the service's gRPC stub."""
