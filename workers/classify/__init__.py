"""The classify worker: the consume-classify-produce loop, its batch pipeline, Redis cache,
delivery and metrics."""
