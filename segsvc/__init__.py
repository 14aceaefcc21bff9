"""segsvc: dynamic user segmentation service (gRPC over PostgreSQL)."""
