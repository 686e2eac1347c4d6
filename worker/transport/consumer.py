"""From a batch of stream entries to committed changes, replies and acks."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from contracts.streams import DEAD_LETTER_STREAM
from worker.repository.database import DATABASE_UNAVAILABLE
from worker.service.batches import Command, UnitOfWorkFactory, apply_batch
from worker.service.outcomes import Outcome, exhausted, internal
from worker.transport.dead_letters import dead_letter_fields
from worker.transport.entries import Delivery, Rejection, parse_command
from worker.transport.relay import EventRelay
from worker.transport.replies import encode_reply

logger = logging.getLogger(__name__)

FIRST_RETRY_S = 0.1
MAX_RETRY_S = 5.0


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    group: str
    consumer: str
    max_deliveries: int
    dead_letter_maxlen: int


@dataclass(frozen=True, slots=True)
class Answer:
    delivery: Delivery
    outcome: Outcome


class CommandConsumer:
    """Applies each batch in one transaction, then answers and acks it in one trip.

    Entries are acknowledged only after their transaction committed and their replies
    and dead letters were handed to Redis. While the database is unavailable the batch
    is retried and nothing is acknowledged; an entry that fails on its own, cannot be
    parsed, or was delivered too often goes to the dead-letter stream.
    """

    def __init__(
        self,
        redis: Redis,
        new_unit_of_work: UnitOfWorkFactory,
        relay: EventRelay,
        config: ConsumerConfig,
    ) -> None:
        self._redis = redis
        self._new_unit_of_work = new_unit_of_work
        self._relay = relay
        self.config = config

    async def consume(self, deliveries: Sequence[Delivery]) -> None:
        """Apply, answer and acknowledge a batch read from one stream."""
        if not deliveries:
            return

        parsed = [self._parse(delivery) for delivery in deliveries]
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
        _log_answers(answers)

    def _parse(self, delivery: Delivery) -> Command | Rejection:
        # An entry that keeps coming back has crashed or stalled every worker that
        # took it; applying it once more would only do that again.
        if delivery.delivery_count > self.config.max_deliveries:
            error = exhausted(delivery.delivery_count, self.config.max_deliveries)
            return Rejection(delivery, error)
        return parse_command(delivery)

    async def _apply(self, commands: Sequence[Command]) -> list[Outcome]:
        if not commands:
            return []
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
                "command failed and goes to dead letters stream=%s message_id=%s "
                "correlation_id=%s",
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
                await self._keep_claimed(commands)
                delay_s = min(delay_s * 2, MAX_RETRY_S)

    async def _keep_claimed(self, commands: Sequence[Command]) -> None:
        # Reset the idle time of entries still in hand, so that other workers do not
        # claim (and answer) them while this one waits for the database.
        entry_ids: list[str | bytes | int | memoryview] = [
            command.entry_id for command in commands
        ]
        try:
            await self._redis.xclaim(
                commands[0].stream,
                self.config.group,
                self.config.consumer,
                min_idle_time=0,
                message_ids=entry_ids,
                justid=True,
            )
        except Exception as error:
            logger.warning("could not renew the claim on in-flight entries: %s", error)

    async def _answer_and_ack(self, stream: str, answers: Sequence[Answer]) -> None:
        # One MULTI/EXEC: the replies, dead letters and acks happen all or not at all,
        # so a crash here never acks an unanswered entry nor answers twice.
        async with self._redis.pipeline(transaction=True) as pipe:
            for answer in answers:
                delivery, outcome = answer.delivery, answer.outcome
                if delivery.reply_to:
                    reply = outcome.reply(delivery.correlation_id)
                    pipe.publish(delivery.reply_to, await encode_reply(delivery, reply))
                if outcome.is_poison and outcome.error is not None:
                    pipe.xadd(
                        DEAD_LETTER_STREAM,
                        dead_letter_fields(
                            delivery, outcome.error, self.config.consumer
                        ),
                        maxlen=self.config.dead_letter_maxlen,
                        approximate=True,
                    )

            entry_ids = [answer.delivery.entry_id for answer in answers]
            pipe.xack(stream, self.config.group, *entry_ids)
            await pipe.execute()


def _log_answers(answers: Sequence[Answer]) -> None:
    # Per message at DEBUG only: at thousands of messages a second, INFO lines would
    # cost more than the work. A dead letter needs someone to look: WARNING.
    for answer in answers:
        delivery = answer.delivery
        code = answer.outcome.error_code
        level = logging.WARNING if answer.outcome.is_poison else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "handled stream=%s entry_id=%s message_id=%s correlation_id=%s "
                "deliveries=%d outcome=%s%s",
                delivery.stream,
                delivery.entry_id,
                delivery.message_id,
                delivery.correlation_id,
                delivery.delivery_count,
                code or "ok",
                " dead_lettered=yes" if answer.outcome.is_poison else "",
            )
