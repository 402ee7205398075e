"""The transaction: one ``MAIL FROM`` .. end attempt, whatever its end.

This module never imports pytest.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal, get_args

from pytest_smtp.mail.message import _UTC, Message, short_repr
from pytest_smtp.mail.session import Envelope, RecipientResult, Reply, SessionInfo

__all__ = ["OUTCOMES", "STAGES", "Outcome", "Stage", "Transaction"]

#: How a transaction ended.
Outcome = Literal["accepted", "rejected", "deferred", "dropped", "aborted"]
#: Where in the SMTP dialogue a transaction was decided.
Stage = Literal["connect", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "eod", "quit"]
#: Every valid :data:`Outcome`, in order.
OUTCOMES: tuple[str, ...] = get_args(Outcome)
#: Every valid :data:`Stage`, in dialogue order.
STAGES: tuple[str, ...] = get_args(Stage)


class Transaction:
    """One ``MAIL FROM`` .. end attempt, whatever its end; mutable while in progress.

    ``outcome`` is ``None`` until :meth:`finish` is called.
    """

    def __init__(self, *, id: int, session: SessionInfo) -> None:
        #: Sequence number, unique per server.
        self.id = id
        #: The connection this transaction ran on.
        self.session = session
        #: Envelope sender as given (``""`` for the null sender), ``None`` before MAIL.
        self.mail_from: str | None = None
        #: ESMTP parameters of MAIL FROM, as sent.
        self.mail_options: list[str] = []
        #: Every RCPT tried, accepted or not, in order.
        self.recipients: list[RecipientResult] = []
        #: How it ended; ``None`` while in progress.
        self.outcome: Outcome | None = None
        #: The stage reached (or where it was decided).
        self.stage: Stage = "mail"
        #: The reply that decided the outcome.
        self.reply: Reply | None = None
        #: The message, for ``accepted`` and ``dropped`` transactions.
        self.message: Message | None = None
        #: ``"C: ..."`` / ``"S: ..."`` lines of this transaction's dialogue.
        self.transcript: list[str] = []
        #: When MAIL FROM arrived (UTC).
        self.started_at = datetime.now(_UTC)
        #: When :meth:`finish` was called (UTC).
        self.ended_at: datetime | None = None
        #: Traceback text when a handler or rule raised.
        self.error: str | None = None
        self._hooks: list[Callable[[Transaction], None]] = []

    @property
    def rcpt_tos(self) -> list[str]:
        """Recipients that were accepted (2xx to RCPT), in order."""
        return [r.address for r in list(self.recipients) if r.accepted]

    @property
    def envelope(self) -> Envelope | None:
        """The envelope so far (accepted recipients only); ``None`` before a sender was taken."""
        if self.mail_from is None:
            return None
        accepted = [r for r in list(self.recipients) if r.accepted]
        return Envelope(
            self.mail_from,
            tuple(r.address for r in accepted),
            tuple(self.mail_options),
            tuple((r.address, tuple(r.options)) for r in accepted),
        )

    @property
    def refused(self) -> list[RecipientResult]:
        """Recipients that were refused (non-2xx to RCPT), in order."""
        return [r for r in list(self.recipients) if not r.accepted]

    @property
    def in_progress(self) -> bool:
        """True until :meth:`finish` has been called."""
        return self.outcome is None

    def finish(
        self,
        outcome: Outcome,
        stage: Stage,
        reply: Reply | None,
        message: Message | None = None,
        error: str | None = None,
    ) -> None:
        """Record how the transaction ended; wakes anyone waiting on its log."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome {outcome!r} is not one of: {', '.join(OUTCOMES)}")
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r} is not one of: {', '.join(STAGES)}")
        if self.outcome is not None:
            raise RuntimeError(
                f"transaction #{self.id} already finished as {self.outcome}; it cannot "
                f"finish again as {outcome}"
            )
        self.stage = stage
        self.reply = reply
        self.message = message
        self.error = error
        self.ended_at = datetime.now(_UTC)
        # Set last: readers on other threads test the outcome first.
        self.outcome = outcome
        for hook in list(self._hooks):
            hook(self)

    def describe(self) -> str:
        """One line for failure texts: id, outcome, stage, reply, sender, recipients (with the
        reply of each refused one)."""
        state = self.outcome or "in progress"
        reply = f": {self.reply}" if self.reply is not None else ""
        tried = [
            r.address if r.accepted else f"{r.address} ({r.reply})" for r in list(self.recipients)
        ]
        return (
            f"#{self.id} {state} at {self.stage}{reply} from={short_repr(self.mail_from)} "
            f"to={short_repr(tried, 200)}"
        )

    def __repr__(self) -> str:
        return f"<Transaction {self.describe()}>"
