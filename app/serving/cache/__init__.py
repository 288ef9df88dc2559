"""The latent cache: in process (memory), in Redis (redis_cache) behind a circuit breaker (breaker)."""
