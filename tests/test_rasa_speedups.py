"""kefu.rasa_speedups: the guard (one Rasa version, KEFU_RASA_SPEEDUPS=0,
every original kept and put back), and each replacement compared with
Rasa's own computation. The comparisons over every rule and recorded
conversation are marked slow (left out of `make check`, run by `make test`)."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import rasa
from rasa.core.actions.action import RemoteAction

from kefu import rasa_speedups

ROOT = Path(__file__).resolve().parents[1]


def replaced_attributes() -> dict[str, object]:
    """What each attribute install() replaces resolves to now, by name."""
    return {name: getattr(rasa_speedups._OWNERS[name], name.rsplit(".", 1)[1]) for name in rasa_speedups.ORIGINALS}


def defined_in(value: object) -> str:
    return getattr(value, "__func__", value).__module__


@pytest.fixture
def stock_rasa():
    """Rasa without the replacements during the test; installed again after."""
    assert rasa_speedups.install()
    names = list(rasa_speedups.ORIGINALS)
    owners = dict(rasa_speedups._OWNERS)
    rasa_speedups.uninstall()
    yield names, owners
    rasa_speedups.uninstall()
    assert rasa_speedups.install()


def assert_stock(names: list[str], owners: dict[str, type]) -> None:
    for name in names:
        value = getattr(owners[name], name.rsplit(".", 1)[1])
        assert defined_in(value).startswith("rasa."), (name, defined_in(value))


def test_install_replaces_every_listed_attribute_and_uninstall_puts_back_the_originals(stock_rasa):
    names, owners = stock_rasa
    before = {name: owners[name].__dict__.get(name.rsplit(".", 1)[1], "inherited") for name in names}
    assert len(names) == 9 and "RulePolicy._prediction_states" in names
    assert before["RulePolicy._prediction_states"] == "inherited"  # Rasa defines it on Policy
    assert_stock(names, owners)

    assert rasa_speedups.install() and rasa_speedups.is_installed()
    assert sorted(rasa_speedups.ORIGINALS) == sorted(names)
    assert all(defined_in(value) == "kefu.rasa_speedups" for value in replaced_attributes().values())

    rasa_speedups.uninstall()
    assert not rasa_speedups.is_installed() and not rasa_speedups.ORIGINALS
    after = {name: owners[name].__dict__.get(name.rsplit(".", 1)[1], "inherited") for name in names}
    assert after == before  # the very objects, staticmethod and classmethod wrappers included
    assert_stock(names, owners)


def test_any_other_rasa_version_keeps_stock_rasa(stock_rasa, monkeypatch, caplog):
    names, owners = stock_rasa
    monkeypatch.setattr(rasa, "__version__", "3.6.20")
    with caplog.at_level(logging.WARNING, logger="kefu.rasa_speedups"):
        assert rasa_speedups.install() is False
    assert not rasa_speedups.is_installed() and not rasa_speedups.ORIGINALS
    assert_stock(names, owners)
    assert "written for Rasa 3.6.21, found Rasa 3.6.20" in caplog.text


def test_kefu_rasa_speedups_0_keeps_stock_rasa(stock_rasa, monkeypatch, caplog):
    names, owners = stock_rasa
    monkeypatch.setenv("KEFU_RASA_SPEEDUPS", "0")
    with caplog.at_level(logging.INFO, logger="kefu.rasa_speedups"):
        assert rasa_speedups.install() is False
    assert_stock(names, owners)
    assert "KEFU_RASA_SPEEDUPS=0" in caplog.text
    monkeypatch.setenv("KEFU_RASA_SPEEDUPS", "1")
    assert rasa_speedups.install()


def test_a_replacement_that_fails_leaves_stock_rasa(stock_rasa, monkeypatch, caplog):
    names, owners = stock_rasa

    def broken() -> None:
        raise AttributeError("a private Rasa member that moved")

    monkeypatch.setattr(rasa_speedups, "_REPLACEMENTS", [*rasa_speedups._REPLACEMENTS[:4], broken])
    with caplog.at_level(logging.WARNING, logger="kefu.rasa_speedups"):
        assert rasa_speedups.install() is False
    assert "could not be installed" in caplog.text
    assert not rasa_speedups.ORIGINALS
    assert_stock(names, owners)


def test_importing_the_tracker_store_changes_nothing_in_rasa_and_loads_no_tensorflow():
    code = (
        "import sys, kefu.tracker_store, kefu.rasa_speedups as s; print('tensorflow' in sys.modules, s.is_installed())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["False", "False"]


@pytest.mark.slow  # loads TensorFlow in a new process
def test_importing_our_nlu_components_installs_them():
    code = "import kefu.nlu.components, kefu.rasa_speedups as s; print(s.is_installed())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["True"]


RESPONSES = [
    {"events": [{"event": "slot", "name": "order_no", "value": "2026000000000001"}], "responses": [{"text": "好的"}]},
    {"events": [{"event": "active_loop", "name": "order_form"}], "responses": []},
    {"events": [], "responses": [{"response": "utter_greet"}]},
    {"events": [{"event": "slot"}], "responses": []},  # a slot event without a name
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
    assert rasa_speedups.install()
    action = RemoteAction("validate_order_form", None)
    if expected_valid:
        assert action._validate_action_result(result) is True
    else:
        with pytest.raises(jsonschema.ValidationError, match="Failed to validate Action server response"):
            action._validate_action_result(result)


def test_install_is_idempotent():
    assert rasa_speedups.install()
    patched = RemoteAction._validate_action_result
    originals = dict(rasa_speedups.ORIGINALS)
    assert rasa_speedups.install()
    assert RemoteAction._validate_action_result is patched
    assert rasa_speedups.ORIGINALS == originals


def test_event_types_resolve_as_before():
    from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered

    assert rasa_speedups.install()
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
def domain():
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain"))


@pytest.fixture(scope="module")
def conversations():
    """Domain, and trackers of every rule and recorded conversation test."""
    from rasa.shared.core.generator import TrainingDataGenerator
    from rasa.shared.importers.importer import TrainingDataImporter

    importer = TrainingDataImporter.load_from_config(
        config_path=str(ROOT / "config.yml"),
        domain_path=str(ROOT / "domain"),
        training_data_paths=[str(ROOT / "data" / "nlu"), str(ROOT / "data" / "rules"), str(ROOT / "tests" / "stories")],
    )
    domain = importer.get_domain()
    trackers = TrainingDataGenerator(
        importer.get_stories(), domain, augmentation_factor=0, use_story_concatenation=False, remove_duplicates=False
    ).generate()
    assert len(trackers) > 100
    return domain, trackers


@pytest.mark.slow
def test_kept_dialogue_states_equal_rasas_at_every_turn(conversations):
    """A live tracker grows event by event (forms rewinding their own turns
    included); after each event the cached states equal Rasa's, for every
    argument combination the policies use, even when callers change the
    states they were given (as the featurizers do)."""
    from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer
    from rasa.shared.core import constants
    from rasa.shared.core.trackers import DialogueStateTracker

    assert rasa_speedups.install()
    domain, trackers = conversations
    rule_only = {constants.RULE_ONLY_SLOTS: ["requested_slot"], constants.RULE_ONLY_LOOPS: ["order_form"]}
    arguments = [(False, False, None), (True, False, None), (False, True, rule_only), (True, True, rule_only)]
    featurizer = MaxHistoryTrackerFeaturizer(max_history=None)
    memo_featurizer = MaxHistoryTrackerFeaturizer(max_history=4)  # as MemoizationPolicy's
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
                for use_text in (False, True):
                    for unlikely in (False, True):
                        arguments_after = (domain, use_text, ignore, rule_only_data, unlikely)
                        assert memo_featurizer.prediction_states(
                            [live], *arguments_after
                        ) == memo_featurizer.prediction_states([plain], *arguments_after)
    assert live._kefu_states and live._kefu_applied, "the caches were used"
    assert compared > 1000 and rewinds > 10, (compared, rewinds)


def _long_tracker(domain, user_turns: int):
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    tracker = DialogueStateTracker("window", domain.slots)
    tracker.update(ActionExecuted("action_listen"))
    for turn in range(user_turns):
        tracker.update(UserUttered(f"第{turn}句", {"name": "greet", "confidence": 1.0}))
        tracker.update(SlotSet("order_no", f"20260000000000{turn:02d}"))
        tracker.update(ActionExecuted("utter_greet"))
        tracker.update(BotUttered("您好"))
        tracker.update(ActionExecuted("action_listen"))
    return tracker


@pytest.mark.parametrize("setting, expected_user_turns", [(None, 30), (0, 30), (10, 10), (40, 30)])
def test_actions_receive_the_recent_user_turns(domain, setting, expected_user_turns):
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.trackers import EventVerbosity
    from rasa.utils.endpoints import EndpointConfig

    assert rasa_speedups.install()
    tracker = _long_tracker(domain, 30)
    extra = {} if setting is None else {rasa_speedups.RECENT_USER_TURNS: setting}
    endpoint = EndpointConfig("http://127.0.0.1:5055/webhook", enable_selective_domain=True, **extra)
    payload = RemoteAction("action_fallback", endpoint)._action_call_format(tracker, domain)

    events = payload["tracker"]["events"]
    assert [e["text"] for e in events if e["event"] == "user"] == [
        f"第{t}句" for t in range(30 - expected_user_turns, 30)
    ]
    assert events[-1] == tracker.events[-1].as_dict()
    # Everything but the events is what stock Rasa sends.
    everything = tracker.current_state(EventVerbosity.ALL)
    assert {k: v for k, v in payload["tracker"].items() if k != "events"} == {
        k: v for k, v in everything.items() if k != "events"
    }
    assert payload["tracker"]["slots"]["order_no"] == "2026000000000029"
    if expected_user_turns == 30:
        assert events == everything["events"]


def _observable_state(tracker):
    from rasa.shared.core.trackers import EventVerbosity

    def message(event):  # one of the tracker's events, or an empty one of its own
        if any(event is e for e in tracker.events):
            return "event", id(event)
        return "own", {k: v for k, v in event.as_dict().items() if k != "timestamp"}

    return (
        tracker.current_state(EventVerbosity.ALL),
        [id(e) for e in tracker.events],
        {name: (slot.value, slot.has_been_set) for name, slot in tracker.slots.items()},
        message(tracker.latest_message),
        message(tracker.latest_bot_utterance),
        tracker.active_loop,
        tracker.followup_action,
        tracker.is_paused(),
        tracker.events.maxlen,
    )


@pytest.mark.slow
def test_copies_of_live_trackers_equal_rasas_replayed_copies(conversations):
    """At every event of every rule and conversation test, the copy of a
    live tracker is in the same state as Rasa's replayed copy, and changing
    the copy (as an action run does) leaves the live tracker alone."""
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionExecutionRejected,
        ActiveLoop,
        BotUttered,
        ConversationPaused,
        ConversationResumed,
        FollowupAction,
        LoopInterrupted,
        Restarted,
        SlotSet,
        UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker

    assert rasa_speedups.install()
    domain, trackers = conversations
    # Events no rule or story has: pause, restart, follow-up, rejected and interrupted loops.
    unusual = [
        ActionExecuted("action_listen"),
        UserUttered("查订单", {"name": "order_status", "confidence": 1.0}),
        ActionExecuted("order_form"),
        ActiveLoop("order_form"),
        BotUttered("请告诉我订单号"),
        ActionExecutionRejected("order_form"),
        LoopInterrupted(True),
        FollowupAction("action_handoff"),
        ConversationPaused(),
        ConversationResumed(),
        ConversationPaused(),
        Restarted(),
        ActionExecuted("action_listen"),
    ]
    compared = 0
    for events in [t.events for t in trackers] + [unusual]:
        live = DialogueStateTracker("conversation", domain.slots)
        live._kefu_read_mark = "read from our store"
        for event in events:
            live.update(event)
            before = _observable_state(live)
            fast = live.copy()
            plain = DialogueStateTracker.travel_back_in_time(live, float("inf"))  # Rasa's copy
            assert not hasattr(fast, "_kefu_read_mark")
            assert _observable_state(fast) == _observable_state(plain) == before, event
            fast.update(SlotSet("order_no", "2026000000000099"))
            fast.update(ActionExecuted("order_form"))
            if fast.active_loop is not None:
                fast.active_loop.rejected = True
            assert _observable_state(live) == before
            compared += 1
    assert compared > 1000


@pytest.fixture(scope="module")
def rule_policy(conversations, tmp_path_factory):
    """RulePolicy trained on data/rules with this project's settings."""
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.engine.graph import ExecutionContext, GraphSchema
    from rasa.engine.storage.local_model_storage import LocalModelStorage
    from rasa.engine.storage.resource import Resource
    from rasa.shared.core.generator import TrainingDataGenerator
    from rasa.shared.importers.importer import TrainingDataImporter

    domain, _ = conversations
    importer = TrainingDataImporter.load_from_config(
        config_path=str(ROOT / "config.yml"),
        domain_path=str(ROOT / "domain"),
        training_data_paths=[str(ROOT / "data" / "nlu"), str(ROOT / "data" / "rules")],
    )
    rules = TrainingDataGenerator(importer.get_stories(), domain, augmentation_factor=0).generate()
    config = {
        **RulePolicy.get_default_config(),
        "core_fallback_threshold": 0.3,
        "core_fallback_action_name": "action_fallback",
        "enable_fallback_prediction": True,
    }
    policy = RulePolicy.create(
        config,
        LocalModelStorage(tmp_path_factory.mktemp("rules")),
        Resource("rules"),
        ExecutionContext(GraphSchema({}), "test"),
    )
    policy.train(rules, domain)
    return policy


@pytest.mark.slow
def test_rules_predict_the_same_from_the_recent_states(conversations, rule_policy):
    """RulePolicy, given only the states its longest rule can look at, makes
    the same prediction as with the whole history, at every event."""
    from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH
    from rasa.shared.core.events import ActionExecuted
    from rasa.shared.core.trackers import DialogueStateTracker

    assert rasa_speedups.install()
    domain, trackers = conversations
    compared = cut = 0
    for tracker in trackers:
        live = DialogueStateTracker(tracker.sender_id, domain.slots)
        live._kefu_read_mark = "read from our store"
        for event in tracker.events:
            live.update(event)
            if not isinstance(event, ActionExecuted):
                continue
            plain = live.copy()  # not live: Rasa's own computation
            recent = rule_policy.predict_action_probabilities(live, domain)
            whole = rule_policy.predict_action_probabilities(plain, domain)
            assert (recent.probabilities, recent.events, recent.hide_rule_turn, recent.is_end_to_end_prediction) == (
                whole.probabilities,
                whole.events,
                whole.hide_rule_turn,
                whole.is_end_to_end_prediction,
            ), (tracker.sender_id, event)
            recent_states = rule_policy._prediction_states(live, domain)
            whole_states = rule_policy._prediction_states(plain, domain)
            assert recent_states == whole_states[-len(recent_states) :]
            for lookup in (rule_policy.lookup[RULES], rule_policy.lookup[RULES_FOR_LOOP_UNHAPPY_PATH]):
                assert rule_policy._get_possible_keys(lookup, recent_states) == rule_policy._get_possible_keys(
                    lookup, whole_states
                ), (tracker.sender_id, event)
            cut += len(recent_states) < len(whole_states)
            compared += 1
    assert compared > 500 and cut > 100, (compared, cut)
