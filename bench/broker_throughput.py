"""Can the RabbitMQ event broker keep up with a busy Rasa event loop?

    python -m bench.broker_throughput [--seconds 30] [--turns-per-second 15]

Inside a Rasa replica the broker publishes on the same event loop that runs
the NLU and the policies, which hold the loop for tens of milliseconds per
turn. This bench makes such a loop without Rasa: simulated turns that each
hold the loop (`--busy-ms`, time.sleep, so the bench takes no CPU of its own
from RabbitMQ), then publish a turn's worth of events (`--events-per-turn`)
through KefuPikaEventBroker into a queue of its own on the loopback
RabbitMQ. Every second it prints how many events were published and
confirmed, how many publishes are still in flight (tasks holding an event)
and how many events are kept for sending again; at the end, how long the
backlog took to clear and how many events reached the queue.

A broker that keeps up has a flat in-flight count; one that falls behind
has a growing one (memory) and publishes that pass the broker's deadline.
By default it runs the same load twice: one message per event (as Rasa's
own broker sends them; here by publishing with headers) and Kefu's way,
events gathered into one message every PIKA_FLUSH_SECONDS.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from typing import Any

from kefu.analytics.rabbitmq import DEFAULT_URL


def _event(sender: str, turn: int, index: int) -> dict[str, Any]:
    # About the size of a Rasa event with parse data (user events are larger).
    return {
        "event": "user" if index == 0 else "action",
        "sender_id": sender,
        "timestamp": time.time(),
        "text": "你好，我想查一下订单的物流到哪里了" * 4,
        "name": f"action_{index}",
        "metadata": {"turn": turn, "padding": "x" * 600},
    }


async def _events_in_queue(channel: Any, queue: str) -> int:
    from kefu.analytics.rabbitmq import events_in_message

    declared = await channel.declare_queue(queue, durable=True, passive=True)
    events = 0
    while message := await declared.get(no_ack=True, fail=False, timeout=5):
        events += len(events_in_message(message.body))
    return events


async def run(
    seconds: float, turns_per_second: float, busy_ms: float, events_per_turn: int, per_event: bool
) -> dict[str, Any]:
    import aio_pika
    import rasa.shared.core.events  # noqa: F401 - the broker logs through it, as inside a Rasa server

    from kefu.analytics.broker import KefuPikaEventBroker

    route = uuid.uuid4().hex[:8]
    exchange, queue = f"kefu-bench-{route}", f"kefu_bench_{route}"
    broker = KefuPikaEventBroker(
        "127.0.0.1", "guest", "guest", queues=[queue], exchange_name=exchange, connection_attempts=1
    )
    await broker.connect()
    admin = await aio_pika.connect(DEFAULT_URL, timeout=5)
    channel = await admin.channel()
    sent = 0
    rows: list[str] = []
    try:
        started = time.monotonic()
        next_report = started + 1
        turn = 0
        interval = 1.0 / turns_per_second
        while time.monotonic() - started < seconds:
            turn_started = time.monotonic()
            time.sleep(busy_ms / 1000)  # the NLU and policies hold the loop
            for index in range(events_per_turn):
                # Headers make the broker send one message per event, as Rasa's own does.
                headers = {"bench": "per-event"} if per_event else None
                broker.publish(_event(f"bench-{turn % 16}", turn, index), headers)
                sent += 1
            turn += 1
            # Other requests' I/O: a few loop turns between one turn's parse and the next.
            for _ in range(4):
                await asyncio.sleep(0)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - turn_started)))
            if time.monotonic() >= next_report:
                next_report += 1
                in_flight, kept = len(broker._background_tasks), len(broker._unpublished_events)
                rows.append(
                    f"  {time.monotonic() - started:5.1f} s: sent {sent:6d}, in flight {in_flight:6d}, "
                    f"kept {kept:5d}, confirmed {broker.events_confirmed:6d}"
                )
                print(rows[-1], flush=True)
        load_ended = time.monotonic()
        most_in_flight = max(int(row.split("in flight")[1].split(",")[0]) for row in rows) if rows else 0
        # The backlog: wait until every event is confirmed (or give up).
        while time.monotonic() - load_ended < 120:
            if broker.events_confirmed >= sent and not broker._background_tasks:
                break
            await asyncio.sleep(0.2)
        cleared = time.monotonic() - load_ended
        return {
            "mode": "one message per event (Rasa's)" if per_event else "gathered into a message every 0.5 s (Kefu's)",
            "turns": turn,
            "turns_per_second": round(turn / (load_ended - started), 1),
            "events": sent,
            "confirmed": broker.events_confirmed,
            "most_in_flight": most_in_flight,
            "backlog_cleared_s": round(cleared, 1),
            "events_in_queue": await _events_in_queue(channel, queue),
        }
    finally:
        await broker.close()
        await channel.queue_delete(queue)
        await channel.exchange_delete(exchange)
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker_throughput")
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--turns-per-second", type=float, default=15)
    parser.add_argument("--busy-ms", type=float, default=30)
    parser.add_argument("--events-per-turn", type=int, default=8)
    parser.add_argument(
        "--mode", choices=["both", "gathered", "per-event"], default="both", help="both: one after the other, same load"
    )
    args = parser.parse_args(argv)
    from kefu.loadtest import rabbitmq_problem

    if problem := rabbitmq_problem(DEFAULT_URL):
        print(f"no RabbitMQ: {problem}")
        return 1
    print(
        f"broker throughput: {args.turns_per_second:g} turns/s, {args.busy_ms:g} ms of loop held per turn, "
        f"{args.events_per_turn} events per turn, {args.seconds:g} s"
    )
    modes = {"both": [True, False], "per-event": [True], "gathered": [False]}[args.mode]
    results = []
    for per_event in modes:
        result = asyncio.run(run(args.seconds, args.turns_per_second, args.busy_ms, args.events_per_turn, per_event))
        print(f"  result: {result}", flush=True)
        results.append(result)
    return 0 if all(result["events_in_queue"] == result["events"] for result in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
