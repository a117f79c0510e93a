"""The cached validator of action-server responses accepts and refuses
exactly what Rasa's own per-call `jsonschema.validate` does."""
from __future__ import annotations

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from kefu import rasa_speedups

RESPONSES = [
    {"events": [{"event": "slot", "name": "order_no", "value": "2026000000000001"}], "responses": [{"text": "好的"}]},
    {"events": [{"event": "active_loop", "name": "order_form"}], "responses": []},
    {"events": [], "responses": [{"response": "utter_greet"}]},
    {"events": [{"event": "slot"}], "responses": []},          # a slot event without a name
    {"events": "not a list", "responses": []},
    {"events": [{"event": "bogus_event"}], "responses": []},
]


@pytest.mark.parametrize("result", RESPONSES)
def test_cached_validator_agrees_with_jsonschema_validate(result):
    schema = RemoteAction.action_response_format_spec()
    try:
        jsonschema.validate(result, schema)
        expected_valid = True
    except jsonschema.ValidationError:
        expected_valid = False
    rasa_speedups.install()
    action = RemoteAction("validate_order_form", None)
    if expected_valid:
        assert action._validate_action_result(result) is True
    else:
        with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
            action._validate_action_result(result)


def test_install_is_idempotent():
    rasa_speedups.install()
    patched = RemoteAction._validate_action_result
    rasa_speedups.install()
    assert RemoteAction._validate_action_result is patched


def test_event_types_resolve_as_before():
    from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

    rasa_speedups.install()
    assert Event.resolve_by_type("slot") is SlotSet
    assert Event.resolve_by_type("user") is UserUttered
    assert Event.resolve_by_type("action") is ActionExecuted
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("no_such_event", default=SlotSet) is SlotSet
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("no_such_event")
    events = [{"event": "slot", "name": "order_no", "value": "1"}, {"event": "action", "name": "action_listen"}]
    from rasa.shared.core.events import deserialise_events
    assert [type(e) for e in deserialise_events(events)] == [SlotSet, ActionExecuted]
