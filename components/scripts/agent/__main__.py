"""fdeploy-agent: the server side of flask-deploy as one program (issue 24). Run as root:

    python3 -I -B <scripts bundle>/agent VERB [--field NAME] < params.json

Parameters arrive as one JSON object on stdin; the result is one JSON object on stdout (human log
lines go to stderr). `--field NAME` prints only that field of the result, as text, for the bash
glue that still calls the agent (a list: one item a line).
"""
import sys

if sys.argv[1:2] == ["supervise"]:
    # every remote step starts here: the supervisor alone, not every verb's module (-B: compiled each run)
    from fdeploy_agent import supervise
    sys.exit(supervise.main(sys.argv[2:]))

from fdeploy_agent.cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
