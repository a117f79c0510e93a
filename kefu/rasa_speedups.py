"""A per-turn cost of Rasa 3.6 that our bot pays and a stock bot does not.

Rasa validates every action-server response with `jsonschema.validate`,
which checks the schema itself against the JSON Schema meta-schema and
builds a new validator on every call. With three or four custom-action calls
per turn that was the largest single cost of a turn in our py-spy profile
(about a sixth of the Rasa server's busy time: BENCHMARKS.md). The schema
never changes, so it is checked once and one validator is kept; responses
are validated exactly as before, with the same error message.

Installed when the Rasa server imports our NLU components or tracker store
(both always load with this project's config); installing twice is a no-op.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, Text

logger = logging.getLogger(__name__)
_INSTALLED = False


def install() -> None:
    global _INSTALLED
    if _INSTALLED:
        return
    from jsonschema import ValidationError
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        try:
            validator.validate(result)
            return True
        except ValidationError as e:
            e.message += (
                f". Failed to validate Action server response from API, "
                f"make sure your response from the Action endpoint is valid. "
                f"For more information about the format visit "
                f"{DOCS_BASE_URL}/custom-actions"
            )
            raise e

    RemoteAction._validate_action_result = _validate_action_result
    _INSTALLED = True
    logger.debug("action-server responses are validated with a cached JSON schema validator")
