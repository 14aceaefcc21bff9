"""The gRPC layer: servicers that translate, one interceptor, one status mapping."""
