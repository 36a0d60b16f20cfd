"""The engine suite's tooling: a private Docker engine, facsimile images and stand-ins.

    python -m dev.engine start|stop|status|env [--name NAME] [--shared-root]
    python -m dev.engine build [IMAGE ...]     # facsimiles and stand-ins, from images.yml
"""
