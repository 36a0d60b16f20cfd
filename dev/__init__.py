"""Development tooling: bootstrap, lint, generators, bundle builder, benchmarks (never shipped)."""
