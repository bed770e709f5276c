"""fdeploy-agent: the server side of flask-deploy as one program (issue 24). Run as root:

    python3 -I -B <scripts bundle>/agent VERB [--field NAME] < params.json

Parameters arrive as one JSON object on stdin; the result is one JSON object on stdout (human log
lines go to stderr). `--field NAME` prints only that field of the result, as text, for the bash
glue that still calls the agent (a list: one item a line).
"""
import sys

from fdeploy_agent.cli import main

sys.exit(main(sys.argv[1:]))
