"""The stand-ins: small servers for the images whose program has no Debian package.

Each module runs as a program (``python3 /standin/<name>.py`` in its image, next to
standin_common.py); the offline tests also import them as dev.engine.standins.<name>.
"""
