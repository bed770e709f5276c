#!/usr/bin/env bash
# activate.sh create: the switch is the agent's `activate` verb (fdeploy_agent/switch.py); kept for state.sh's repair
exec python3 -I -B "$(dirname "$0")/agent" activate
