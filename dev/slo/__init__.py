"""SLOs as code: prometheus/slos.yml -> rules, promtool tests, dashboard windows, docs.

    python -m dev.slo            # (re)write every generated file (make slo)
    python -m dev.slo --check    # exit 1 and name each file that differs (make test)

Modules: `spec` reads and validates the spec, `rules` writes prometheus/rules/slo.yml,
`model` is an independent model of those rules (the SRE workbook's arithmetic plus
Prometheus' rate() extrapolation), `unit_tests` turns the model's predictions into the
promtool tests, `docs` writes the tables in docs/alerting.md.
"""
