"""Sample Apollonia workload: api, analyzer and load generator."""
