"""From a batch of stream entries to committed changes, replies and acks."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from contracts import ErrorCode
from worker.repository.database import DATABASE_UNAVAILABLE
from worker.service.batches import Command, UnitOfWorkFactory, apply_batch
from worker.service.outcomes import Outcome, internal
from worker.transport.entries import Delivery, Rejection, parse_command
from worker.transport.relay import EventRelay
from worker.transport.replies import encode_reply

logger = logging.getLogger(__name__)

_PRODUCER_FAULTS = {ErrorCode.MALFORMED, ErrorCode.VALIDATION_ERROR}

FIRST_RETRY_S = 0.1
MAX_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class Answer:
    delivery: Delivery
    outcome: Outcome


class CommandConsumer:
    """Applies each batch in one transaction, then answers and acks it in one trip.

    Entries are acknowledged only after their transaction committed and their replies
    were handed to Redis; while the database is unavailable the batch is retried
    and nothing is acknowledged.
    """

    def __init__(
        self,
        redis: Redis,
        new_unit_of_work: UnitOfWorkFactory,
        group: str,
        relay: EventRelay,
    ) -> None:
        self._redis = redis
        self._new_unit_of_work = new_unit_of_work
        self._group = group
        self._relay = relay

    async def consume(self, deliveries: Sequence[Delivery]) -> None:
        """Apply, answer and acknowledge a batch read from one stream."""
        if not deliveries:
            return

        parsed = [parse_command(delivery) for delivery in deliveries]
        commands = [item for item in parsed if isinstance(item, Command)]

        outcomes = iter(await self._apply(commands))
        answers = [
            Answer(item.delivery, Outcome.failure(item.error))
            if isinstance(item, Rejection)
            else Answer(delivery, next(outcomes))
            for delivery, item in zip(deliveries, parsed, strict=True)
        ]

        await self._answer_and_ack(deliveries[0].stream, answers)

        if any(command.changes_state for command in commands):
            self._relay.nudge()
        _log_batch(deliveries[0].stream, answers)

    async def _apply(self, commands: Sequence[Command]) -> list[Outcome]:
        try:
            return await self._apply_until_committed(commands)
        except Exception:
            logger.exception(
                "batch failed stream=%s commands=%d; applying one at a time",
                commands[0].stream,
                len(commands),
            )
        return [await self._apply_isolated(command) for command in commands]

    async def _apply_isolated(self, command: Command) -> Outcome:
        try:
            (outcome,) = await self._apply_until_committed([command])
            return outcome
        except Exception:
            logger.exception(
                "command failed stream=%s message_id=%s correlation_id=%s",
                command.stream,
                command.message_id,
                command.correlation_id,
            )
            return Outcome.failure(internal(command.correlation_id))

    async def _apply_until_committed(
        self, commands: Sequence[Command]
    ) -> list[Outcome]:
        delay_s = FIRST_RETRY_S
        while True:
            try:
                return await apply_batch(self._new_unit_of_work, commands)
            except DATABASE_UNAVAILABLE as error:
                logger.warning(
                    "database unavailable (%s); batch of %d commands waits, "
                    "retry in %.1fs",
                    error,
                    len(commands),
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_RETRY_S)

    async def _answer_and_ack(self, stream: str, answers: Sequence[Answer]) -> None:
        async with self._redis.pipeline(transaction=False) as pipe:
            for answer in answers:
                delivery = answer.delivery
                if delivery.reply_to:
                    reply = answer.outcome.reply(delivery.correlation_id)
                    pipe.publish(delivery.reply_to, await encode_reply(delivery, reply))

            entry_ids = [answer.delivery.entry_id for answer in answers]
            pipe.xack(stream, self._group, *entry_ids)
            await pipe.execute()


def _log_batch(stream: str, answers: Sequence[Answer]) -> None:
    # Per message at DEBUG only: at thousands of messages a second, INFO lines would
    # cost more than the work. Bad input is a producer's bug, worth a WARNING.
    for answer in answers:
        delivery = answer.delivery
        code = answer.outcome.error_code
        level = logging.WARNING if code in _PRODUCER_FAULTS else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "handled stream=%s entry_id=%s message_id=%s correlation_id=%s "
                "outcome=%s",
                stream,
                delivery.entry_id,
                delivery.message_id,
                delivery.correlation_id,
                code or "ok",
            )
