"""A frozen or dead action server costs a customer one apology, never five
minutes of silence.

Rasa 3.6's `RemoteAction.run` waits for the action server for
`rasa.core.constants.DEFAULT_REQUEST_TIMEOUT` (300 s, a module constant),
and when the call fails the processor logs the exception and carries on
with no events: the customer gets nothing. Replaced here (Rasa 3.6.21
only; the original is kept in ORIGINALS):

* every call to the action server has a deadline: `kefu_action_timeout`
  (seconds) on the `action_endpoint` in endpoints.yml, or the environment
  variable KEFU_ACTION_TIMEOUT, else DEFAULT_ACTION_TIMEOUT_SECONDS. It is
  a little longer than the action server's own deadline on shop calls
  (actions/common.py: SHOP_CALL_DEADLINE_SECONDS, 8 s), so that a slow
  database is answered by the action server's apology first;
* a call that fails (time-out, refused connection, an error status, an
  invalid answer) answers the customer with the domain's
  `utter_service_unavailable` and logs one line for the operator;
* the turn then ends (FollowupAction(action_listen)): one wait and one
  apology per turn; should another call of the same turn come all the
  same (a form's validation and its ask), it fails at once; the next
  message tries the server again;
* whatever Rasa then does with the failed call's events (a form may reject
  them all), the turn ends with exactly one apology and action_listen
  (`MessageProcessor._run_action`): never silence, never ten predictions;
* a failed `action_session_start` is replaced by Rasa's own session start;
* a failed form validation (`validate_<form>`) rejects the slot values it
  was asked to check (sets them to None): a value nobody validated is never
  accepted, and the form asks for it again when the server is back.

A rejection by the action server (ActionExecutionRejection) is Rasa's own
flow control and is passed through unchanged.

A message that carries a `message_id` in its metadata and is already in the
conversation (a retry of a request whose answer was lost: a replica killed
after saving the turn, a gateway time-out) is answered with the replies it
got then, not handled twice (`MessageProcessor.handle_message`).

And a turn that fails outside the actions (the conversation store or the
lock store unreachable: Redis restarting) is answered with the same apology,
where Rasa's channels log it and answer nothing (`Agent.handle_message`);
on a collecting channel (REST) the answers of the failed turn, which was
not stored, are replaced by the apology.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from typing import Any

logger = logging.getLogger(__name__)

SUPPORTED_RASA_VERSION = "3.6.21"
DEFAULT_ACTION_TIMEOUT_SECONDS = 8.5
APOLOGY_RESPONSE = "utter_service_unavailable"
# A client's id for one message, in the message metadata: retries carry the same.
MESSAGE_ID_KEY = "message_id"
# Turns whose action-server call already failed, with when (monotonic).
_FAILED_TURNS: OrderedDict[tuple, float] = OrderedDict()
_FAILED_TURNS_KEPT = 10_000
_FAILED_TURN_SECONDS = 120.0
ORIGINALS: dict[str, Any] = {}


def action_timeout(action_endpoint: Any) -> float:
    configured = os.environ.get("KEFU_ACTION_TIMEOUT")
    if configured is None and action_endpoint is not None:
        configured = (getattr(action_endpoint, "kwargs", None) or {}).get("kefu_action_timeout")
    try:
        seconds = float(configured) if configured is not None else DEFAULT_ACTION_TIMEOUT_SECONDS
    except (TypeError, ValueError):
        logger.warning(
            "kefu_action_timeout / KEFU_ACTION_TIMEOUT %r is not a number; using %s s",
            configured,
            DEFAULT_ACTION_TIMEOUT_SECONDS,
        )
        return DEFAULT_ACTION_TIMEOUT_SECONDS
    return seconds if seconds > 0 else DEFAULT_ACTION_TIMEOUT_SECONDS


def _turn_key(tracker: Any) -> tuple | None:
    """The conversation and its latest user message: one turn."""
    from rasa.shared.core.events import UserUttered

    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return tracker.sender_id, event.timestamp
    return None


def _remember_failed_turn(key: tuple | None) -> None:
    if key is None:
        return
    now = time.monotonic()
    _FAILED_TURNS[key] = now
    _FAILED_TURNS.move_to_end(key)
    while _FAILED_TURNS and (
        len(_FAILED_TURNS) > _FAILED_TURNS_KEPT or next(iter(_FAILED_TURNS.values())) < now - _FAILED_TURN_SECONDS
    ):
        _FAILED_TURNS.popitem(last=False)


def _slot_candidates(action_name: str, tracker: Any) -> list[str]:
    """The slots a `validate_<form>` call was asked to check: Rasa puts them
    after an `ActionExecuted(<form>)` at the end of its temporary tracker."""
    from rasa.shared.core.events import ActionExecuted, SlotSet

    form_name = action_name[len("validate_") :]
    candidates: list[str] = []
    for event in reversed(tracker.events):
        if isinstance(event, SlotSet):
            candidates.append(event.key)
        elif isinstance(event, ActionExecuted) and event.action_name == form_name:
            return [name for name in candidates if name != "requested_slot"]
        else:
            break
    return []


def install() -> None:
    import rasa

    if "RemoteAction.run" in ORIGINALS:
        return
    if rasa.__version__ != SUPPORTED_RASA_VERSION:
        logger.warning(
            "kefu.rasa_resilience is written for Rasa %s, not %s: action-server deadlines not installed",
            SUPPORTED_RASA_VERSION,
            rasa.__version__,
        )
        return
    from rasa.core.actions.action import ActionBotResponse, ActionExecutionRejection, RemoteAction
    from rasa.shared.core.constants import ACTION_LISTEN_NAME, ACTION_SESSION_START_NAME
    from rasa.shared.core.events import FollowupAction, SlotSet

    original_run = RemoteAction.run
    ORIGINALS["RemoteAction.run"] = original_run

    async def run(self: RemoteAction, output_channel, nlg, tracker, domain) -> list[Any]:
        if self.name() == ACTION_SESSION_START_NAME:
            return await _session_start(self, original_run, output_channel, nlg, tracker, domain)
        turn = _turn_key(tracker)
        failed_before = turn is not None and turn in _FAILED_TURNS
        if not failed_before:
            deadline = action_timeout(self.action_endpoint)
            started = time.monotonic()
            try:
                return await asyncio.wait_for(original_run(self, output_channel, nlg, tracker, domain), deadline)
            except ActionExecutionRejection:
                raise
            except asyncio.TimeoutError:
                logger.error(
                    "action server: %s did not answer within %.1f s (%s); the customer gets %s",
                    self.name(),
                    deadline,
                    getattr(self.action_endpoint, "url", None),
                    APOLOGY_RESPONSE,
                )
            except Exception as exc:  # noqa: BLE001 - every failure is answered, and logged once here
                logger.error(
                    "action server: %s failed after %.1f s: %s: %s; the customer gets %s",
                    self.name(),
                    time.monotonic() - started,
                    type(exc).__name__,
                    str(exc).splitlines()[0] if str(exc) else "",
                    APOLOGY_RESPONSE,
                )
            _remember_failed_turn(turn)
        else:
            logger.info("action server failed earlier in this turn: %s skipped", self.name())
        events: list[Any] = []
        if not failed_before:
            events += await ActionBotResponse(APOLOGY_RESPONSE).run(output_channel, nlg, tracker, domain)
        # The turn ends here: without the failed action's events the policies
        # would predict it (or another call) again, up to Rasa's limit of 10.
        events.append(FollowupAction(ACTION_LISTEN_NAME))
        if self.name().startswith("validate_"):
            events += [SlotSet(slot, None) for slot in _slot_candidates(self.name(), tracker)]
        return events

    RemoteAction.run = run
    _answer_retries_from_the_store()
    _end_failed_turns()
    _answer_failed_turns()
    logger.debug("action-server deadlines installed (kefu.rasa_resilience)")


def _answer_failed_turns() -> None:
    from asyncio import CancelledError

    from rasa.core.agent import Agent

    original_handle_message = Agent.handle_message
    ORIGINALS["Agent.handle_message"] = original_handle_message

    async def handle_message(self: Agent, message: Any) -> list[dict[str, Any]] | None:
        try:
            return await original_handle_message(self, message)
        except CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - answered here, and logged once
            logger.error(
                "turn of %r failed: %s: %s; the customer gets %s",
                message.sender_id,
                type(exc).__name__,
                str(exc).splitlines()[0] if str(exc) else "",
                APOLOGY_RESPONSE,
            )
            channel = message.output_channel
            collected = getattr(channel, "messages", None)
            if isinstance(collected, list):
                # Answers of a turn that was not stored (the store failed at
                # the end): the customer is told it failed instead, and a
                # retry finds the conversation as it was.
                collected.clear()
            apology = _apology_text(self)
            if channel is not None and apology and (isinstance(collected, list) or not collected):
                try:
                    await channel.send_text_message(message.sender_id, apology)
                except Exception:  # noqa: BLE001 - the channel itself is gone: nothing more to do
                    logger.exception("could not send the apology to %r", message.sender_id)
            return None

    Agent.handle_message = handle_message


def _apology_text(agent: Any) -> str | None:
    domain = getattr(agent, "domain", None)
    variants = (getattr(domain, "responses", None) or {}).get(APOLOGY_RESPONSE) or []
    return variants[0].get("text") if variants else None


async def _session_start(action: Any, original_run: Any, output_channel, nlg, tracker, domain) -> list[Any]:
    """Our action_session_start, or Rasa's own when the action server fails:
    the session starts either way, and the turn itself apologises if it
    needs the action server."""
    from rasa.core.actions.action import ActionSessionStart

    deadline = action_timeout(action.action_endpoint)
    try:
        return await asyncio.wait_for(original_run(action, output_channel, nlg, tracker, domain), deadline)
    except Exception as exc:  # noqa: BLE001 - Rasa's session start instead, logged once here
        logger.error(
            "action server: action_session_start failed (%s); Rasa's own session start instead", type(exc).__name__
        )
        return await ActionSessionStart().run(output_channel, nlg, tracker, domain)


def _apologised_in_this_turn(tracker: Any, apology: str | None) -> bool:
    from rasa.shared.core.events import BotUttered, UserUttered

    for event in reversed(tracker.events):
        if isinstance(event, UserUttered):
            return False
        if (
            isinstance(event, BotUttered)
            and (event.metadata or {}).get("utter_action") == APOLOGY_RESPONSE
            or isinstance(event, BotUttered)
            and apology
            and event.text == apology
        ):
            return True
    return False


def _end_failed_turns() -> None:
    """Whatever Rasa did with a failed call's events (a form may reject them
    all), a turn whose action server failed ends with one apology and
    action_listen: no further predictions, no silence."""
    from rasa.core.actions.action import ActionBotResponse
    from rasa.core.processor import MessageProcessor
    from rasa.shared.core.constants import ACTION_LISTEN_NAME

    original_run_action = MessageProcessor._run_action
    ORIGINALS["MessageProcessor._run_action"] = original_run_action

    async def _run_action(self: MessageProcessor, action, tracker, output_channel, nlg, prediction) -> bool:
        predict_more = await original_run_action(self, action, tracker, output_channel, nlg, prediction)
        if action.name() == ACTION_LISTEN_NAME or _turn_key(tracker) not in _FAILED_TURNS:
            return predict_more
        variants = self.domain.responses.get(APOLOGY_RESPONSE) or [{}]
        if not _apologised_in_this_turn(tracker, variants[0].get("text")):
            events = await ActionBotResponse(APOLOGY_RESPONSE).run(output_channel, nlg, tracker, self.domain)
            tracker.update_with_events(events, self.domain)
            await self.execute_side_effects(events, tracker, output_channel)
        tracker.trigger_followup_action(ACTION_LISTEN_NAME)
        return True

    MessageProcessor._run_action = _run_action


def replies_to(tracker: Any, message_id: str) -> list[Any] | None:
    """The bot messages that answered the user message with this id in the
    tracker's events, or None when no such message is there."""
    from rasa.shared.core.events import BotUttered, UserUttered

    from kefu.shop.privacy import mask_in_place

    # The conversation store masks every metadata string that reads as a
    # card or ID number, and a random hex id does about once in 6,400:
    # such an id is stored masked, so a retry is compared in that form.
    stored_form = mask_in_place(message_id)
    replies: list[Any] | None = None
    for event in tracker.events:
        if isinstance(event, UserUttered):
            if replies is not None:
                break
            if (event.metadata or {}).get(MESSAGE_ID_KEY) in (message_id, stored_form):
                replies = []
        elif replies is not None and isinstance(event, BotUttered):
            replies.append(event)
    return replies


def _answer_retries_from_the_store() -> None:
    from rasa.core.processor import MessageProcessor

    original_handle_message = MessageProcessor.handle_message
    ORIGINALS["MessageProcessor.handle_message"] = original_handle_message

    async def handle_message(self: MessageProcessor, message: Any) -> Any:
        # Called under the conversation's lock: a retry waits for the first
        # attempt to finish, then finds it here.
        metadata = message.metadata if isinstance(message.metadata, dict) else {}
        message_id = metadata.get(MESSAGE_ID_KEY)
        if isinstance(message_id, str) and message_id:
            tracker = await self.tracker_store.retrieve(message.sender_id)
            replies = replies_to(tracker, message_id) if tracker is not None else None
            if replies is not None:
                logger.info(
                    "message %s of %r was handled already: its %d replies sent again",
                    message_id,
                    message.sender_id,
                    len(replies),
                )
                for reply in replies:
                    await message.output_channel.send_response(message.sender_id, reply.message())
                return None
        return await original_handle_message(self, message)

    MessageProcessor.handle_message = handle_message
