#!/bin/sh
# The cAdvisor image's entrypoint runs `cadvisor -logtostderr "$@"`
# (google/cadvisor@v0.60.5:deploy/entrypoint.sh); here the cAdvisor stand-in.
exec /standin/cadvisor.py -logtostderr "$@"
