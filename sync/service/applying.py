"""Carrying out an accepted proposal: record the intent (ACCEPTED, one winner), write the
directory, mark APPLIED; a crash in between is finished by ``recover_intents``."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sync.errors import ConfigError, ProposalNotPending, SyncError
from sync.models import ProposalState
from sync.service.engine import apply_proposal
from sync.service.records import Actor, Decision
from sync.service.shared import Shared
from sync.state.audit import subject_of
from sync.state.proposals import StoredProposal

log = logging.getLogger(__name__)

PAST = {
    "accept": "Accepted",
    "apply": "Applied",
    "link": "Linked",
    "create": "Created",
    "remove_sync": "Sync removed",
    "delete_user_confirm": "Deleted",
}


class Applier:
    def __init__(self, shared: Shared) -> None:
        self._live, self._store, self._tenants = shared.live, shared.store, shared.tenants
        self._reader, self._digests, self._listeners = (
            shared.reader,
            shared.digests,
            shared.listeners,
        )

    async def already(self, pid: str, lost: ProposalNotPending) -> Decision:
        """Someone else decided first (or a double click): say who."""
        sp = await self._store.proposals.get(pid)
        item = await self._digests.item(sp) if sp is not None else None
        return Decision("already", item, f"Already handled by {lost.actor or 'someone'}.")

    async def accept_and_apply(
        self,
        sp: StoredProposal,
        verb: str,
        inputs: Mapping[str, str],
        actor: Actor,
        *,
        notify: bool = True,
    ) -> Decision:
        """Record the intent (ACCEPTED, atomically: one winner), then ``finish``."""
        try:
            await self._store.proposals.transition(
                sp.id,
                ProposalState.ACCEPTED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb=verb,
                result={"verb": verb, "inputs": dict(inputs)},
            )
        except ProposalNotPending as e:
            return await self.already(sp.id, e)
        return await self.finish(sp, verb, inputs, actor, notify=notify)

    async def finish(
        self,
        sp: StoredProposal,
        verb: str,
        inputs: Mapping[str, str],
        actor: Actor,
        *,
        notify: bool = True,
    ) -> Decision:
        """Write the directory for an ACCEPTED proposal and mark it APPLIED. A retryable
        error leaves it ACCEPTED (finished later); any other error puts it back to PENDING."""
        directory = self._tenants.directories.get(sp.directory)
        users = await self._reader.stored_users(sp.tenant)
        try:
            if directory is None:
                raise ConfigError(f"directory '{sp.directory}' is not configured any more")
            change = await apply_proposal(
                sp.proposal,
                verb,
                inputs,
                directory,
                users.get(sp.proposal.entra_id or ""),
                self._live.current,
            )
        except SyncError as e:
            return await self._failed(sp, verb, actor, e)
        done = await self._store.proposals.transition(
            sp.id,
            ProposalState.APPLIED,
            actor_id=actor.id,
            actor_name=actor.name,
            verb=verb,
            expect=ProposalState.ACCEPTED,
            result={"verb": verb, "inputs": dict(inputs)},
        )
        after = change.get("after")
        await self._store.audit_log.audit(
            actor.id,
            actor.name,
            f"{verb} {sp.proposal.kind.value}",
            tenant=sp.tenant,
            proposal_id=sp.id,
            entra_id=sp.proposal.entra_id,
            app_user_id=after.get("id") if isinstance(after, dict) else sp.proposal.app_user_id,
            before=change.get("before"),
            after=after,
            subject=subject_of(sp.proposal),
        )
        await self._bump_counters(sp.tenant, verb)
        item = await self._digests.item(done)
        if notify:
            await self._listeners.item_changed(item)
        return Decision("done", item, f"{PAST.get(verb, 'Done')} by {actor.name}.")

    async def _failed(self, sp: StoredProposal, verb: str, actor: Actor, e: SyncError) -> Decision:
        if e.retryable:
            log.warning("apply of %s deferred: %s", sp.id, e.code)
            message = f"Not applied yet: {e.hint or e.message}"
        else:
            await self._store.proposals.transition(
                sp.id,
                ProposalState.PENDING,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="failed",
                expect=ProposalState.ACCEPTED,
                result={"error": e.to_dict()},
            )
            await self._store.audit_log.audit(
                actor.id,
                actor.name,
                f"failed {verb}",
                tenant=sp.tenant,
                proposal_id=sp.id,
                entra_id=sp.proposal.entra_id,
                app_user_id=sp.proposal.app_user_id,
                after={"error": e.code},
                subject=subject_of(sp.proposal),
            )
            message = f"Could not apply: {e.hint or e.message}"
        now = await self._store.proposals.get(sp.id)
        item = await self._digests.item(now) if now is not None else None
        return Decision("failed", item, message, e)

    async def _bump_counters(self, tenant: str, verb: str) -> None:
        """Keep "70/70 synced" live between runs: an accepted match or applied update makes
        one more user synced; a linked or created user is one more that could be."""
        if verb in ("accept", "apply", "link", "create"):
            await self._store.runs.bump(tenant, "synced")
        if verb in ("link", "create"):
            await self._store.runs.bump(tenant, "syncable")

    async def recover_intents(self) -> int:
        """Finish decisions whose intent was recorded but whose directory write did not
        complete (a crash or an outage in between). Returns how many were finished."""
        n = 0
        for sp in await self._store.proposals.intents():
            res = sp.result or {}
            verb = str(res.get("verb") or sp.verb or "")
            actor = Actor(sp.decided_by_id or "system", sp.decided_by or "Entra Sync")
            if verb == "pick_owner":
                owner = str(res.get("owner") or "")
                await self._store.choices.set_number_owner(
                    sp.tenant, sp.proposal.number or "", owner
                )
                await self._store.proposals.transition(
                    sp.id,
                    ProposalState.APPLIED,
                    actor_id=sp.decided_by_id or "system",
                    actor_name=sp.decided_by or "system",
                    verb=verb,
                    expect=ProposalState.ACCEPTED,
                )
                n += 1
                continue
            d = await self.finish(sp, verb, dict(res.get("inputs") or {}), actor)
            n += d.outcome == "done"
        return n
