"""For the bash glue that remains: a step's JSON parameters as shell assignments P_<KEY>=<quoted>,
which lib.sh load_params evals. Keys must be NAME_LIKE_THIS; every value is quoted by shlex, so a
value is data whatever it holds."""
import re
import shlex
from typing import Any, Dict

from .errors import AgentError


def shell_params(host: Any, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    lines = []
    for k, v in params.items():
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", k):
            raise AgentError("bad parameter name: %r" % k)
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append("P_%s=%s" % (k, shlex.quote(str(v))))
    return {"lines": lines}


def result_field(host: Any, params: Dict[str, Any], log: Any, lock_wait: int) -> Dict[str, Any]:
    """An agent's JSON result, given back: with --field NAME, one field of it (lib.sh result_field)."""
    return params
