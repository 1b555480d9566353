"""Redis-backed stores, one job each: sessions, pending logins, refresh locks and rate limits.

Every connection they use is built by `connections.RedisConnections` from REDIS_URL. Every key they write
starts with the deployment's prefix (BFF_REDIS_PREFIX), handed to each store's constructor, so two
deployments on one Redis share nothing; the key layouts in each module show it as `bff:`, the default.
"""

DEFAULT_PREFIX = "bff:"
