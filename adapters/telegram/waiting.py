"""The status messages of the jobs still in line, kept telling their place and wait as the queue
moves (the runtime calls ``refresh`` every ``QUEUE_REFRESH_S``)."""

from __future__ import annotations

from dataclasses import dataclass

from adapters.telegram.keyboards import cancel_keyboard
from adapters.telegram.status import QUEUED, StatusBoard
from adapters.telegram.texts import BotTexts
from domain.ports import JobQueue
from domain.use_cases.admit import AdmitJobs


@dataclass
class WaitingLine:
    admit: AdmitJobs
    queue: JobQueue
    board: StatusBoard
    texts: BotTexts

    async def refresh(self) -> int:
        """Edit the status of every job still in line with its place and wait now (the board
        edits only what changed, no faster than its interval); returns how many are in line.

        Only for the chats whose events this instance receives: with several bot instances the
        one that gets a chat's progress and results keeps its status (another instance may have
        sent the status reply), so no two instances edit one status and a finished or started
        job is never shown as waiting again."""
        in_line = await self.admit.in_line()
        still = {record.job_id for record, _ in in_line}
        for job_id in self.board.waiting():
            if job_id not in still:  # started, finished or cancelled: its events' owner says so
                self.board.forget(job_id)
        for record, position in in_line:
            if record.status_message_id is None or not self.queue.delivers_events_of(record.chat_id):
                continue
            self.board.show(
                record.job_id,
                record.chat_id,
                record.status_message_id,
                self.texts.queued_text(record.locale, record.prompt, position, record.lane),
                cancel_keyboard(self.texts.t, record.locale, record.job_id),
                stage=QUEUED,
            )
        return len(in_line)
