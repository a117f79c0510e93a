"""The cached validator of action-server responses accepts and refuses
exactly what Rasa's own per-call `jsonschema.validate` does."""
from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from rasa.core.actions.action import RemoteAction

from kefu import rasa_speedups

ROOT = Path(__file__).resolve().parents[1]

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


@pytest.fixture(scope="module")
def conversations():
    """Domain, and trackers of every rule and recorded conversation test."""
    from rasa.shared.core.generator import TrainingDataGenerator
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_config(
        config_path=str(ROOT / "config.yml"), domain_path=str(ROOT / "domain"),
        training_data_paths=[str(ROOT / "data" / "rules"), str(ROOT / "tests" / "stories")])
    domain = importer.get_domain()
    trackers = TrainingDataGenerator(importer.get_stories(), domain, augmentation_factor=0,
                                     use_story_concatenation=False, remove_duplicates=False).generate()
    assert len(trackers) > 100
    return domain, trackers


def test_kept_dialogue_states_equal_rasas_at_every_turn(conversations):
    """A live tracker grows event by event (forms rewinding their own turns
    included); after each event the cached states equal Rasa's, for every
    argument combination the policies use, even when callers change the
    states they were given (as the featurizers do)."""
    from rasa.shared.core import constants
    from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer
    from rasa.shared.core.trackers import DialogueStateTracker

    rasa_speedups.install()
    domain, trackers = conversations
    rule_only = {constants.RULE_ONLY_SLOTS: ["requested_slot"], constants.RULE_ONLY_LOOPS: ["order_form"]}
    arguments = [(False, False, None), (True, False, None), (False, True, rule_only), (True, True, rule_only)]
    featurizer = MaxHistoryTrackerFeaturizer(max_history=None)
    compared = rewinds = 0
    for tracker in trackers:
        live = DialogueStateTracker(tracker.sender_id, domain.slots)
        live._kefu_read_mark = "read from our store"
        previous_applied: list = []
        for step, event in enumerate(tracker.events):
            live.update(event)
            applied = live.applied_events()
            rewinds += any(a is not b for a, b in zip(previous_applied, applied))
            previous_applied = list(applied)
            plain = live.copy()  # a tracker our store never saw: Rasa's own computation
            assert [id(e) for e in applied] == [id(e) for e in plain.applied_events()], (tracker.sender_id, step)
            applied.clear()  # a caller changing its list changes nothing kept
            for omit, ignore, rule_only_data in arguments:
                cached = domain.states_for_tracker_history(live, omit, ignore, rule_only_data)
                expected = domain.states_for_tracker_history(plain, omit, ignore, rule_only_data)
                assert cached == expected, (tracker.sender_id, step, omit, ignore)
                compared += 1
                # What the featurizer does to the states it is given.
                featurizer._choose_last_user_input([cached], use_text_for_last_user_input=step % 2 == 0)
    assert live._kefu_states and live._kefu_applied, "the caches were used"
    assert compared > 1000 and rewinds > 10, (compared, rewinds)
