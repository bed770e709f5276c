"""The one kind of error the agent reports to the user."""


class AgentError(Exception):
    """A refusal or failure: its message names the cause first, then the fix."""
