"""Operator tools: run on a Docker host and shipped in the staging bundle."""
