"""The recording Elasticsearch stand-in used by the offline tests, on 127.0.0.1.

It is the same program the engine suite runs as the elasticsearch image's stand-in:
dev/engine/standins/elasticsearch.py (its docstring says what it answers like Elasticsearch
9, with which sources, and what it does not prove). Here it starts in-process on a free port:

* ``ElasticsearchStandIn(password="pw")`` - basic auth as elastic:pw on every call;
  ``password=None`` serves everyone.
* ``bulk()``, ``documents()``, ``bulk_requests()``, ``run_ilm()`` on the stand-in's own clock
  ``now`` (so a test can simulate days), ``faults`` (``unavailable`` answers 503,
  ``lose_answers`` indexes and then resets the connection, ``reset`` resets without indexing;
  each for the next N ``_bulk`` requests), ``reject`` (a predicate on a document: 400
  ``document_parsing_exception``, what a mapping conflict returns), ``stop()``/``start()``
  (Elasticsearch down and back on the same port).
"""

from __future__ import annotations

from dev.engine.standins.elasticsearch import ElasticsearchStandIn, Index, Recorded

__all__ = ["ElasticsearchStandIn", "Index", "Recorded"]
