"""Serving a published index: the HTTP API (http_server.py) and Ray shard-group actors (ray_service.py)."""
