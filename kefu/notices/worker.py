"""`python -m kefu.notices.worker` (started by `make run`): the dramatiq
worker for notices, and its scheduler, which queues a `tick` every
KEFU_NOTICE_POLL_SECONDS (2 s). Several workers may run: every job is
idempotent (kefu.notices.queue)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading

import dramatiq

from kefu.db.engine import DatabaseError, ensure_schema

logger = logging.getLogger("kefu.notices.worker")

# The worker's niceness unless KEFU_NOTICE_NICE says otherwise: 10, so that
# chatting customers get the CPU first (BENCHMARKS.md, notices section).
DEFAULT_NICE = 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kefu.notices.worker")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("KEFU_NOTICE_THREADS", "4")))
    parser.add_argument("--poll", type=float, default=float(os.environ.get("KEFU_NOTICE_POLL_SECONDS", "2")))
    parser.add_argument(
        "--nice",
        type=int,
        default=int(os.environ.get("KEFU_NOTICE_NICE", str(DEFAULT_NICE))),
        help="CPU niceness of the worker (KEFU_NOTICE_NICE)",
    )
    args = parser.parse_args(argv)
    if args.nice:
        # Sending can wait a little; a chatting customer cannot. On a machine
        # short of cores the kernel gives Rasa and the action server the CPU
        # first (BENCHMARKS.md: chat p50 while a campaign sends).
        os.nice(args.nice)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("dramatiq").setLevel(logging.WARNING)
    try:
        ensure_schema()
    except DatabaseError as exc:
        logger.error("the notice worker needs the shop database: %s", exc)
        return 2
    from kefu.notices.queue import declare, queue_url

    jobs = declare()
    worker = dramatiq.Worker(jobs.broker, worker_threads=args.threads)
    worker.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    logger.info(
        "notice worker on %s: %s threads, triggers polled every %ss, nice %s",
        queue_url(),
        args.threads,
        args.poll,
        os.nice(0),
    )
    while not stop.is_set():
        try:
            jobs.tick.send()
        except Exception as exc:  # noqa: BLE001 - Redis away: said once per poll, tried again
            logger.error("could not queue the notices tick: %s", exc)
        stop.wait(args.poll)
    logger.info("stopping the notice worker")
    worker.stop(timeout=10_000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
