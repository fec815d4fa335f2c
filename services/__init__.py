"""The SOLAMI gRPC services, one package each."""
