"""Two per-turn costs of Rasa 3.6 found with py-spy (BENCHMARKS.md), removed
without changing what Rasa does:

* Rasa validates every action-server response with `jsonschema.validate`,
  which checks the schema itself against the JSON Schema meta-schema and
  builds a new validator on every call. With three or four custom-action
  calls per turn that was about a sixth of the Rasa server's busy time. The
  schema never changes: it is checked once and one validator is kept;
  responses are validated exactly as before, with the same error message.
* `Event.resolve_by_type` walks every subclass of `Event` (with an
  `inspect.isabstract` check each) for every event it deserialises; the
  tracker store deserialises the whole conversation on every turn, so this
  grew with the conversation to a quarter of a long conversation's turn.
  The type name → class map is cached, rebuilt when a name is not found
  (a class imported later), and the first match wins as before.

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
    _cache_event_types()
    _INSTALLED = True
    logger.debug("action-server responses are validated with a cached JSON schema validator")


def _cache_event_types() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    original = Event.resolve_by_type
    by_name: Dict[Text, Any] = {}

    def rebuild() -> None:
        by_name.clear()
        for cls in all_subclasses(Event):
            by_name.setdefault(cls.type_name, cls)

    def resolve_by_type(type_name: Text, default: Any = None) -> Any:
        cls = by_name.get(type_name)
        if cls is None:
            rebuild()
            cls = by_name.get(type_name)
        if cls is not None:
            return cls
        return original(type_name, default)

    Event.resolve_by_type = staticmethod(resolve_by_type)
