"""From a batch of stream entries to committed changes, replies and acks."""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from redis.asyncio import Redis

from contracts.streams import DEAD_LETTER_STREAM, QUERY_STREAM
from worker.repository.database import brief, database_unavailable
from worker.repository.unit_of_work import UnitOfWorkFactory
from worker.service.batches import Command, Rejected, apply_batch
from worker.service.outcomes import Outcome, exhausted, internal
from worker.transport.claims import Claims, Settlement
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
    claim_idle_ms: int


@dataclass(frozen=True, slots=True)
class Answer:
    delivery: Delivery
    outcome: Outcome
    changed_state: bool = False


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
        self._claims = Claims(
            redis, config.group, config.consumer, config.claim_idle_ms
        )

    async def consume(self, deliveries: Sequence[Delivery]) -> None:
        """Apply, answer and acknowledge a batch read from one stream."""
        if not deliveries:
            return

        stream = deliveries[0].stream
        entry_ids = [delivery.entry_id for delivery in deliveries]
        async with self._claims.holding(stream, entry_ids):
            answers = await self._answers(deliveries)
            await self._answer_and_ack(stream, answers)

        if any(answer.changed_state for answer in answers):
            self._relay.nudge()
        _log_answers(answers)

    async def _answers(self, deliveries: Sequence[Delivery]) -> list[Answer]:
        parsed = [self._parse(delivery) for delivery in deliveries]
        commands = [item for item in parsed if isinstance(item, Command)]
        # Refused queries change nothing and leave no trace but their dead letter.
        rejected = [
            _audited(item)
            for item in parsed
            if isinstance(item, Rejection) and item.delivery.stream != QUERY_STREAM
        ]

        outcomes = iter(await self._apply(commands, rejected))
        return [
            Answer(item.delivery, Outcome.failure(item.error))
            if isinstance(item, Rejection)
            else Answer(delivery, next(outcomes), item.changes_state)
            for delivery, item in zip(deliveries, parsed, strict=True)
        ]

    def _parse(self, delivery: Delivery) -> Command | Rejection:
        # An entry that keeps coming back has crashed or stalled every worker that
        # took it; applying it once more would only do that again.
        if delivery.delivery_count > self.config.max_deliveries:
            error = exhausted(delivery.delivery_count, self.config.max_deliveries)
            return Rejection(delivery, error)
        return parse_command(delivery)

    async def _apply(
        self, commands: Sequence[Command], rejected: Sequence[Rejected]
    ) -> list[Outcome]:
        if not commands and not rejected:
            return []
        try:
            return await self._apply_until_committed(commands, rejected)
        except Exception:
            logger.exception(
                "batch failed commands=%d rejected=%d; applying one at a time",
                len(commands),
                len(rejected),
            )
        outcomes = [await self._apply_isolated(command) for command in commands]
        await self._audit_isolated(rejected)
        return outcomes

    async def _audit_isolated(self, rejected: Sequence[Rejected]) -> None:
        if not rejected:
            return
        try:
            await self._apply_until_committed([], rejected)
        except Exception:
            # Their dead letters and replies still go out: the entries are not lost,
            # only missing from the audit log, which this line reports.
            logger.exception(
                "rejected entries not audited count=%d message_ids=%s",
                len(rejected),
                ",".join(repr(entry.message_id) for entry in rejected),
            )

    async def _apply_isolated(self, command: Command) -> Outcome:
        try:
            (outcome,) = await self._apply_until_committed([command])
            return outcome
        except Exception:
            logger.exception(
                "command failed and goes to dead letters stream=%s message_id=%r "
                "correlation_id=%r",
                command.stream,
                command.message_id,
                command.correlation_id,
            )
            return Outcome.failure(internal(command.correlation_id))

    async def _apply_until_committed(
        self, commands: Sequence[Command], rejected: Sequence[Rejected] = ()
    ) -> list[Outcome]:
        delay_s = FIRST_RETRY_S
        while True:
            try:
                return await apply_batch(self._new_unit_of_work, commands, rejected)
            except Exception as error:
                if not database_unavailable(error):
                    raise
                logger.warning(
                    "database unavailable or locked (%s); batch of %d entries "
                    "waits, retry in %.1fs",
                    brief(error),
                    len(commands) + len(rejected),
                    delay_s,
                )
                await asyncio.sleep(delay_s)
                delay_s = min(delay_s * 2, MAX_RETRY_S)

    async def _answer_and_ack(self, stream: str, answers: Sequence[Answer]) -> None:
        settlements = [await self._settlement(answer) for answer in answers]
        settled = await self._claims.settle(
            stream,
            DEAD_LETTER_STREAM,
            self.config.dead_letter_maxlen,
            settlements,
        )
        if len(settled) < len(answers):
            logger.warning(
                "entries claimed by another consumer meanwhile, left to it "
                "count=%d stream=%s",
                len(answers) - len(settled),
                stream,
            )

    async def _settlement(self, answer: Answer) -> Settlement:
        delivery, outcome = answer.delivery, answer.outcome
        reply = b""
        if delivery.reply_to:
            reply_json = outcome.reply(delivery.correlation_id)
            reply = await encode_reply(delivery, reply_json)

        dead_letter = None
        if outcome.is_poison and outcome.error is not None:
            dead_letter = dead_letter_fields(
                delivery, outcome.error, self.config.consumer
            )
        return Settlement(delivery.entry_id, delivery.reply_to, reply, dead_letter)


def _audited(rejection: Rejection) -> Rejected:
    delivery = rejection.delivery
    return Rejected(
        stream=delivery.stream,
        message_id=delivery.message_id,
        correlation_id=delivery.correlation_id,
        error=rejection.error,
        source=delivery.source,
    )


def _log_answers(answers: Sequence[Answer]) -> None:
    # Per message at DEBUG only: at thousands of messages a second, INFO lines would
    # cost more than the work. A dead letter needs someone to look: WARNING.
    # Ids come from the wire: quoted and escaped (%r), they cannot end the line
    # or pass for other fields, even if one ever escaped `read_entry`'s checks.
    for answer in answers:
        delivery = answer.delivery
        code = answer.outcome.error_code
        level = logging.WARNING if answer.outcome.is_poison else logging.DEBUG
        if logger.isEnabledFor(level):
            logger.log(
                level,
                "handled stream=%s entry_id=%s message_id=%r correlation_id=%r "
                "deliveries=%d outcome=%s%s",
                delivery.stream,
                delivery.entry_id,
                delivery.message_id,
                delivery.correlation_id,
                delivery.delivery_count,
                code or "ok",
                " dead_lettered=yes" if answer.outcome.is_poison else "",
            )
