"""Costs of Rasa 3.6 found with py-spy (BENCHMARKS.md), removed without
changing what Rasa decides. Those marked "live trackers" apply only to the
trackers that our tracker store (kefu.tracker_store) keeps alive between
turns; every other tracker goes through Rasa's own code.

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
* Every policy prediction (several per turn) rebuilds the dialogue states
  of the whole conversation: `Domain.states_for_tracker_history` replays
  every event into a fresh tracker and builds a state at every action. For
  live trackers the states are kept with the tracker and only the events added since the last call
  are replayed; when Rasa's `applied_events` rewrites history (a form
  rewinding its own turns, an undo), the states before the first changed
  event are kept and the rest are rebuilt. The states returned are copies
  (of the parts callers change), equal to what Rasa computes
  (tests/test_rasa_speedups.py checks this after every event of the rules
  and the recorded conversation tests).
* `DialogueStateTracker.applied_events` walks the whole conversation, and
  is called many times per turn. For live trackers the result is
  kept and extended with the new events, unless a new event names a loop
  not seen before (which can change how earlier events are read): then it
  is computed again from the start.
* `DialogueStateTracker.copy`, which Rasa calls before every action it
  runs, replays every event into a new tracker. For live trackers the copy
  takes the tracker's current state instead (the state that
  replaying its events produces: the state of a tracker changes only
  through its events), with its own events list, slots and active loop.
* RulePolicy matches its rules against the end of the conversation: a
  state further back than the longest rule never changes which rules
  apply (`_is_rule_applicable` returns True for it). For live trackers it
  is given the last states only, as many as its longest rule has; only its
  debug log and the description it gives a turn that no rule matched
  differ (checked: the same predictions at every event of every rule and
  conversation test). Likewise a featurizer with a `max_history`
  (MemoizationPolicy's) copies only the states it keeps.
* Loading a model: Rasa builds DIET's and the ResponseSelector's weights by
  `model.fit` on one example, which traces TensorFlow's whole training
  graph (the CRF's included): two thirds of the Rasa server's start-up and
  about 370 MB that stayed resident. One training step run eagerly builds
  the same weights and optimizer variables without tracing anything; the
  trained weights are loaded over them as before (tests/test_nlu_model.py
  compares the predictions with those of Rasa's own loading).

One opt-in change of what Rasa sends: with `kefu_recent_user_turns: N` on
the `action_endpoint` in endpoints.yml, the action server receives the
events of the last N user turns instead of every event of the
conversation (slots, latest message, active loop and the rest of the
tracker are sent as before). Encoding and decoding the whole history for
each of the three or four action calls of a turn was the largest part of
a long conversation's turn (BENCHMARKS.md). Our actions look back at most
two user turns (action_fallback); rasa_sdk's forms only at the events after
the latest user message. Without the replacements (stock Rasa) the option is
ignored and every event is sent.

Installation: `install()`, once per process, from the one place every
process that trains, tests or serves our model goes through: Rasa imports
kefu.nlu.components (config.yml names its components) before it builds or
loads any part of the model, and that module calls `install()`. Nothing
else installs them (importing kefu.tracker_store changes nothing in Rasa).
`install()` is idempotent and guarded:

* it refuses, with a warning in the log, any Rasa but the version these
  replacements were written for (`RASA_VERSION`): they copy and replace
  private Rasa code, which may differ in any other release;
* `KEFU_RASA_SPEEDUPS=0` in the environment leaves stock Rasa (to compare,
  or to rule the replacements out when something looks wrong);
* every replaced attribute is kept in `ORIGINALS`, and `uninstall()` puts
  them all back (tests use it to compare with Rasa's own code).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Callable, Iterable, Reversible, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rasa.core.actions.action import RemoteAction
    from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer
    from rasa.core.policies.rule_policy import RulePolicy
    from rasa.shared.core.domain import Domain, State
    from rasa.shared.core.events import Event
    from rasa.shared.core.trackers import DialogueStateTracker

logger = logging.getLogger(__name__)

RASA_VERSION = "3.6.21"  # the only Rasa these replacements were written for and tested against
SWITCH = "KEFU_RASA_SPEEDUPS"  # "0": stock Rasa
RECENT_USER_TURNS = "kefu_recent_user_turns"  # the action_endpoint option in endpoints.yml

# Rasa's own attributes that install() replaced, by "Class.attribute", as
# found in the class's __dict__ (so a staticmethod or classmethod is kept as
# such); _ABSENT when the class only inherited it.
ORIGINALS: dict[str, Any] = {}
_OWNERS: dict[str, type] = {}
_ABSENT = object()
_installed = False


def install() -> bool:
    """Replaces the Rasa methods described above, once; returns whether they
    are in place. Leaves stock Rasa (and says why in the log) when
    KEFU_RASA_SPEEDUPS=0, on any Rasa version but RASA_VERSION, or when a
    replacement cannot be made."""
    global _installed
    if _installed:
        return True
    if os.environ.get(SWITCH, "1").strip() == "0":
        logger.info("%s=0: running stock Rasa, without kefu.rasa_speedups", SWITCH)
        return False
    import rasa

    if rasa.__version__ != RASA_VERSION:
        logger.warning(
            "kefu.rasa_speedups was written for Rasa %s, found Rasa %s: running stock Rasa "
            "(slower turns, same answers)",
            RASA_VERSION,
            rasa.__version__,
        )
        return False
    try:
        for replace in _REPLACEMENTS:
            replace()
    except Exception:  # noqa: BLE001 - a partial set of replacements is worse than none
        logger.warning("kefu.rasa_speedups could not be installed: running stock Rasa", exc_info=True)
        uninstall()
        return False
    _installed = True
    logger.info(
        "kefu.rasa_speedups installed: %d private Rasa methods replaced (%s=0 runs stock Rasa)", len(ORIGINALS), SWITCH
    )
    return True


def uninstall() -> None:
    """Puts back every attribute install() replaced."""
    global _installed
    for name, original in reversed(list(ORIGINALS.items())):
        owner, attribute = _OWNERS[name], name.rsplit(".", 1)[1]
        if original is _ABSENT:
            delattr(owner, attribute)
        else:
            setattr(owner, attribute, original)
    ORIGINALS.clear()
    _OWNERS.clear()
    _installed = False


def is_installed() -> bool:
    return _installed


def _replace(owner: type, attribute: str, replacement: Any) -> None:
    """Sets `owner.attribute`, keeping the original for uninstall()."""
    name = f"{owner.__name__}.{attribute}"
    if name not in ORIGINALS:
        ORIGINALS[name] = owner.__dict__.get(attribute, _ABSENT)
        _OWNERS[name] = owner
    setattr(owner, attribute, replacement)


def is_live(tracker: Any) -> bool:
    """A tracker that kefu.tracker_store keeps alive between turns (it marks
    the trackers it reads); every other tracker goes through Rasa's code."""
    return hasattr(tracker, "_kefu_read_mark")


def _cache_response_validator() -> None:
    from jsonschema import ValidationError
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
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

    _replace(RemoteAction, "_validate_action_result", _validate_action_result)


def _cache_event_types() -> None:
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    original = Event.resolve_by_type
    by_name: dict[str, type[Event]] = {}

    def rebuild() -> None:
        by_name.clear()
        for cls in all_subclasses(Event):
            by_name.setdefault(cls.type_name, cls)

    def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        cls = by_name.get(type_name)
        if cls is None:
            rebuild()
            cls = by_name.get(type_name)
        if cls is not None:
            return cls
        return original(type_name, default)

    _replace(Event, "resolve_by_type", staticmethod(resolve_by_type))


# (position in the replayed events, state or None when the turn is hidden,
# the two loop variables of Rasa's loop after it)
LoopVariables = tuple[Any, bool]
Turn = tuple[int, "State | None", LoopVariables]


class _StatesCache:
    """The states of one live tracker's history, for one set of arguments."""

    def __init__(self) -> None:
        self.events: list[Event] = []  # the applied events replayed so far
        self.replay: DialogueStateTracker | None = None  # a tracker with exactly those events applied
        self.turns: list[Turn] = []  # one entry per ActionExecuted replayed


def _copy_states(states: Sequence[State]) -> list[State]:
    """Copies of the states for the caller to change, with the user
    sub-states that Rasa shares between states still shared among the
    copies. Only the user sub-states are copied: the featurizers delete the
    text or the intent there; nothing changes the other sub-states once
    they are built (per turn, copying every sub-state of a long
    conversation cost more than building the new states)."""
    from rasa.shared.core.constants import USER

    users: dict[int, Any] = {}
    copies = []
    for state in states:
        twin = dict(state)
        user = state.get(USER)
        if user is not None:
            shared = users.get(id(user))
            if shared is None:
                shared = users[id(user)] = dict(user)
            twin[USER] = shared
        copies.append(twin)
    return copies


def _state_at(
    domain: Domain,
    tracker: DialogueStateTracker,
    hide_rule_turn: bool,
    previous: State | None,
    loop: LoopVariables,
    omit_unset_slots: bool,
    ignore_rule_only_turns: bool,
    rule_only_data: dict[str, Any] | None,
) -> tuple[State | None, LoopVariables]:
    """The body of Rasa's loop in `Domain.states_for_tracker_history` for one
    turn: returns (state or None when hidden, new loop variables)."""
    from rasa.shared.core.constants import PREVIOUS_ACTION

    last_ml_action_sub_state, turn_was_hidden = loop
    if ignore_rule_only_turns:
        if not turn_was_hidden:
            last_ml_action_sub_state = domain._get_prev_action_sub_state(tracker)
        if not tracker.followup_action and not tracker.latest_action_name == tracker.active_loop_name:
            turn_was_hidden = hide_rule_turn
        if turn_was_hidden:
            return None, (last_ml_action_sub_state, turn_was_hidden)
    state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, rule_only_data)
        if previous is not None:
            domain._substitute_rule_only_user_input(state, previous)
        if last_ml_action_sub_state:
            state[PREVIOUS_ACTION] = last_ml_action_sub_state
    return domain._clean_state(state), (last_ml_action_sub_state, turn_was_hidden)


def _kept_states(
    domain: Domain,
    tracker: DialogueStateTracker,
    omit_unset_slots: bool,
    ignore_rule_only_turns: bool,
    rule_only_data: dict[str, Any] | None,
) -> list[State]:
    """The states of a live tracker, kept with it: not to be changed."""
    from rasa.shared.core.events import ActionExecuted

    caches: dict[tuple[Any, ...], _StatesCache] | None = getattr(tracker, "_kefu_states", None)
    if caches is None:
        caches = tracker._kefu_states = {}
    key = (id(domain), omit_unset_slots, ignore_rule_only_turns, repr(rule_only_data))
    cache = caches.get(key)
    if cache is None:
        cache = caches[key] = _StatesCache()
    applied = tracker.applied_events()

    kept = 0
    for old, new in zip(cache.events, applied):
        if old is not new:
            break
        kept += 1
    if cache.replay is None or kept < len(cache.events):
        cache.turns = [turn for turn in cache.turns if turn[0] < kept]
        cache.replay = tracker.init_copy()
        for event in applied[:kept]:
            cache.replay.update(event)
    replay = cache.replay
    loop: LoopVariables = cache.turns[-1][2] if cache.turns else (None, False)
    previous = next((turn[1] for turn in reversed(cache.turns) if turn[1] is not None), None)
    for position in range(kept, len(applied)):
        event = applied[position]
        if isinstance(event, ActionExecuted):
            state, loop = _state_at(
                domain,
                replay,
                event.hide_rule_turn,
                previous,
                loop,
                omit_unset_slots,
                ignore_rule_only_turns,
                rule_only_data,
            )
            cache.turns.append((position, state, loop))
            if state is not None:
                previous = state
        replay.update(event)
    cache.events = applied  # a list of our own: applied_events() returns a new one
    final, _ = _state_at(
        domain, replay, False, previous, loop, omit_unset_slots, ignore_rule_only_turns, rule_only_data
    )
    states = [turn[1] for turn in cache.turns if turn[1] is not None]
    if final is not None:
        states.append(final)
    return states


def _cache_dialogue_states() -> None:
    from rasa.shared.core.domain import Domain

    original = Domain.states_for_tracker_history

    def states_for_tracker_history(
        self: Domain,
        tracker: DialogueStateTracker,
        omit_unset_slots: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: dict[str, Any] | None = None,
    ) -> list[State]:
        if not is_live(tracker):
            return original(self, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        return _copy_states(_kept_states(self, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data))

    _replace(Domain, "states_for_tracker_history", states_for_tracker_history)


def _cache_applied_events() -> None:
    from rasa.shared.core.events import (
        ActionExecuted,
        ActionReverted,
        ActiveLoop,
        Restarted,
        SessionStarted,
        UserUtteranceReverted,
        UserUttered,
    )
    from rasa.shared.core.trackers import DialogueStateTracker

    original = DialogueStateTracker.applied_events

    def apply(
        tracker: DialogueStateTracker, events: Iterable[Event], applied: list[Event], loop_names: set[str]
    ) -> list[Event]:
        """Rasa's loop in `applied_events`, continued from `applied`."""
        for event in events:
            if isinstance(event, (Restarted, SessionStarted)):
                applied = []
            elif isinstance(event, ActionReverted):
                tracker._undo_till_previous(ActionExecuted, applied)
            elif isinstance(event, UserUtteranceReverted):
                tracker._undo_till_previous(UserUttered, applied)
                tracker._undo_till_previous(ActionExecuted, applied)
            elif (
                isinstance(event, ActionExecuted)
                and event.action_name in loop_names
                and not tracker._first_loop_execution_or_unhappy_path(event.action_name, applied)
            ):
                tracker._undo_till_previous_loop_execution(event.action_name, applied)
            else:
                applied.append(event)
        return applied

    def applied_events(self: DialogueStateTracker) -> list[Event]:
        if not is_live(self):
            return original(self)
        events = self.events
        count = len(events)
        cached = getattr(self, "_kefu_applied", None)
        if cached is not None:
            done, last, applied, loop_names = cached
            unchanged_prefix = done == 0 or (done <= count and events[done - 1] is last)
            if unchanged_prefix and done == count:
                return list(applied)
            if unchanged_prefix:
                new = list(itertools.islice(events, done, None))
                if {e.name for e in new if isinstance(e, ActiveLoop) and e.name} <= loop_names:
                    applied = apply(self, new, applied, loop_names)
                    self._kefu_applied = (count, events[-1], applied, loop_names)
                    return list(applied)
        loop_names = {e.name for e in events if isinstance(e, ActiveLoop) and e.name}
        applied = apply(self, events, [], loop_names)
        self._kefu_applied = (count, events[-1] if count else None, applied, loop_names)
        return list(applied)

    _replace(DialogueStateTracker, "applied_events", applied_events)


def recent_events(events: Reversible[Event], user_turns: int) -> list[Event]:
    """The events from the `user_turns`-th last user message on (all of
    them when there are fewer user messages)."""
    from rasa.shared.core.events import UserUttered

    picked = []
    seen = 0
    for event in reversed(events):
        picked.append(event)
        if isinstance(event, UserUttered):
            seen += 1
            if seen == user_turns:
                break
    picked.reverse()
    return picked


def _send_recent_events_to_actions() -> None:
    import rasa
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.core.trackers import EventVerbosity

    original = RemoteAction._action_call_format

    def _action_call_format(self: RemoteAction, tracker: DialogueStateTracker, domain: Domain) -> dict[str, Any]:
        turns = self.action_endpoint.kwargs.get(RECENT_USER_TURNS) if self.action_endpoint else None
        if not turns:
            return original(self, tracker, domain)
        # Rasa's own method, with the events cut to the recent turns.
        tracker_state = tracker.current_state(EventVerbosity.NONE)
        tracker_state["events"] = [event.as_dict() for event in recent_events(tracker.events, int(turns))]
        result = {
            "next_action": self._name,
            "sender_id": tracker.sender_id,
            "tracker": tracker_state,
            "version": rasa.__version__,
        }
        if not self._is_selective_domain_enabled() or domain.does_custom_action_explicitly_need_domain(self.name()):
            result["domain"] = domain.as_dict()
        return result

    _replace(RemoteAction, "_action_call_format", _action_call_format)


def _copy_without_replay() -> None:
    import copy as copying

    from rasa.shared.core.events import BotUttered, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    original = DialogueStateTracker.copy

    def latest_of(events: Sequence[Event], event_type: type[Event]) -> Event | None:
        return next((event for event in reversed(events) if isinstance(event, event_type)), None)

    def copy(self: DialogueStateTracker) -> DialogueStateTracker:
        if not is_live(self):
            return original(self)
        twin = self.init_copy()
        # init_copy resets the slots; a replay would set them to these values.
        twin.slots = {name: copying.copy(slot) for name, slot in self.slots.items()}
        twin.events = twin._create_events(list(self.events))
        twin._paused = self._paused
        twin.followup_action = self.followup_action
        twin.latest_action = dict(self.latest_action) if self.latest_action is not None else None
        # After a replay the latest messages are the event objects themselves,
        # or (none yet, or reset since) empty ones of the copy's own.
        if self.latest_message is latest_of(self.events, UserUttered):
            twin.latest_message = self.latest_message
        if self.latest_bot_utterance is latest_of(self.events, BotUttered):
            twin.latest_bot_utterance = self.latest_bot_utterance
        twin.active_loop = copying.copy(self.active_loop) if self.active_loop is not None else None
        return twin

    _replace(DialogueStateTracker, "copy", copy)


def _rules_read_recent_states() -> None:
    from rasa.core.policies.policy import SupportedData
    from rasa.core.policies.rule_policy import RULES, RULES_FOR_LOOP_UNHAPPY_PATH, RulePolicy

    original = RulePolicy._prediction_states

    def longest_rule(policy: RulePolicy) -> int:
        length: int | None = getattr(policy, "_kefu_longest_rule", None)
        if length is None:
            keys = list(policy.lookup.get(RULES, {})) + list(policy.lookup.get(RULES_FOR_LOOP_UNHAPPY_PATH, {}))
            length = max((len(policy._rule_key_to_state(k)) for k in keys), default=0)
            policy._kefu_longest_rule = length
        return length

    def _prediction_states(
        self: RulePolicy,
        tracker: DialogueStateTracker,
        domain: Domain,
        use_text_for_last_user_input: bool = False,
        rule_only_data: dict[str, Any] | None = None,
    ) -> list[State]:
        if not is_live(tracker) or self.supported_data() == SupportedData.ML_DATA:
            return original(self, tracker, domain, use_text_for_last_user_input, rule_only_data)
        # What Policy._prediction_states asks of the featurizer for rule data,
        # with the states cut to what the rules can look at.
        states = _kept_states(domain, tracker, False, False, rule_only_data)
        recent = _copy_states(states[-max(longest_rule(self), 1) :])
        self.featurizer._choose_last_user_input([recent], use_text_for_last_user_input)
        return recent

    _replace(RulePolicy, "_prediction_states", _prediction_states)


def _slice_before_copying() -> None:
    from rasa.core.featurizers.tracker_featurizers import MaxHistoryTrackerFeaturizer

    original = MaxHistoryTrackerFeaturizer.prediction_states

    def prediction_states(
        self: MaxHistoryTrackerFeaturizer,
        trackers: list[DialogueStateTracker],
        domain: Domain,
        use_text_for_last_user_input: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: dict[str, Any] | None = None,
        ignore_action_unlikely_intent: bool = False,
    ) -> list[list[State]]:
        if not self.max_history or not all(is_live(t) for t in trackers):
            return original(
                self,
                trackers,
                domain,
                use_text_for_last_user_input,
                ignore_rule_only_turns,
                rule_only_data,
                ignore_action_unlikely_intent,
            )
        # Rasa's method, slicing the kept states before copying them.
        trackers_as_states = []
        for tracker in trackers:
            states = _kept_states(domain, tracker, False, ignore_rule_only_turns, rule_only_data)
            if ignore_action_unlikely_intent:
                states = self._remove_action_unlikely_intent_from_states(states)
            trackers_as_states.append(_copy_states(self.slice_state_history(states, self.max_history)))
        self._choose_last_user_input(trackers_as_states, use_text_for_last_user_input)
        return trackers_as_states

    _replace(MaxHistoryTrackerFeaturizer, "prediction_states", prediction_states)


def _build_models_eagerly() -> None:
    import tensorflow as tf
    from rasa.utils.tensorflow.constants import LEARNING_RATE, RUN_EAGERLY
    from rasa.utils.tensorflow.data_generator import RasaBatchDataGenerator
    from rasa.utils.tensorflow.models import RasaModel

    def load(
        cls: type[RasaModel],
        model_file_name: str,
        model_data_example: Any,
        predict_data_example: Any = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> RasaModel:
        # Rasa's RasaModel.load, with one eager training step instead of `fit`.
        model = cls(*args, **kwargs)
        config = kwargs.get("config", {})
        model.compile(
            optimizer=tf.keras.optimizers.Adam(config.get(LEARNING_RATE, 0.001)), run_eagerly=config.get(RUN_EAGERLY)
        )
        batch, _ = RasaBatchDataGenerator(model_data_example, batch_size=1)[0]
        model.train_step(batch)
        model.load_weights(model_file_name)
        if not finetune_mode and predict_data_example:
            model.run_inference(predict_data_example)
        return model

    _replace(RasaModel, "load", classmethod(load))


# In this order: the installer of each replacement described in the module docstring.
_REPLACEMENTS: list[Callable[[], None]] = [
    _cache_response_validator,
    _cache_event_types,
    _cache_dialogue_states,
    _cache_applied_events,
    _send_recent_events_to_actions,
    _copy_without_replay,
    _rules_read_recent_states,
    _slice_before_copying,
    _build_models_eagerly,
]
