"""Redis-backed stores, one job each: sessions, pending logins, refresh locks and rate limits.

Every connection they use is built by `connections.RedisConnections` from REDIS_URL.
"""
