"""The engine's conversation lock in Redis, safe when several engine processes share it.

Rasa 3.6's ``RedisLockStore`` reads a conversation's ticket queue, changes it in Python and
writes it back. Two engines doing that at once for one conversation lose each other's
tickets: both then process the same conversation together, or a queue left empty blocks
the conversation for good (seen with three processes in a few seconds; upstream issue
RasaHQ/rasa#9213, its fix was reverted). Here every change of the queue is one Redis
transaction (WATCH/MULTI, retried when another engine changed it meanwhile), and
finishing a turn removes the ticket and deletes an empty queue in the same step.

Endpoints: ``lock_store: {type: nlu.lock_store.AtomicRedisLockStore, url: host, port: 6379, db: 1}``
(``barri run`` writes it when ``REDIS_URL`` is set). Runs inside the engine (Python 3.10).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TypeVar

import redis
from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


class AtomicRedisLockStore(RedisLockStore):
    """``RedisLockStore`` whose ticket queue changes are atomic across processes."""

    def __init__(self, endpoint_config: EndpointConfig) -> None:
        # Rasa builds a lock store named by its module path with the endpoint config alone
        super().__init__(host=endpoint_config.url or "localhost", **endpoint_config.kwargs)

    def _change(self, conversation_id: str, change: Callable[[TicketLock | None], tuple[TicketLock | None, T]]) -> T:
        """Apply ``change`` to the stored queue atomically; a returned ``None`` queue is deleted."""
        key = self.key_prefix + conversation_id
        with self.red.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    stored = pipe.get(key)
                    lock = TicketLock.from_dict(json.loads(stored)) if stored else None
                    new, result = change(lock)
                    pipe.multi()
                    if new is None:
                        pipe.delete(key)
                    else:
                        pipe.set(key, new.dumps())
                    pipe.execute()
                    return result
                except redis.WatchError:
                    continue  # another engine changed this queue meanwhile: read it again

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def add(lock: TicketLock | None) -> tuple[TicketLock, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._change(conversation_id, add)
        except redis.RedisError as error:
            raise LockError(f"Error while acquiring lock. Error:\n{error}") from error

    def update_lock(self, conversation_id: str) -> None:
        def expire(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is None:
                return None, None
            lock.remove_expired_tickets()
            return lock, None

        self._change(conversation_id, expire)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        self.cleanup(conversation_id, ticket_number)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        def done(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is None:
                return None, None
            lock.remove_ticket_for(ticket_number)
            return (lock if lock.is_someone_waiting() else None), None

        self._change(conversation_id, done)
