"""Admin decisions on items: accept, apply, link, create, remove, delete (confirmed), ignore,
pick the owner of a shared number; the removal guard (confirm, dismiss) and un-ignoring a
user. Each checks the card's digest first, then whether the item still describes Entra."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sync.errors import InputError, LockBusy, ProposalNotPending, SyncError
from sync.models import DirectoryUser, EntraUser, Kind, ProposalState
from sync.plan.bulk import NumberCounts, needs_individual_look, number_counts
from sync.plan.planner import entra_label
from sync.service.applying import Applier
from sync.service.engine import VERBS, still_valid
from sync.service.records import CONNECTED, Actor, Decision, Item
from sync.service.runs import Runs
from sync.service.shared import Shared
from sync.state.audit import subject_of
from sync.state.proposals import StoredProposal

log = logging.getLogger(__name__)

NOT_ISSUED = "This card was not issued by this bot."
BULK_CONFIRM_ABOVE = 3  # Accept all / Apply all of more items asks to confirm the list first
BULK_VERBS = {Kind.MATCH: "accept", Kind.UPDATE: "apply"}


@dataclass(frozen=True, slots=True)
class BulkSet:
    """What Accept all / Apply all would do now: the items it decides, the items it leaves
    for an individual look (with why), and the digest of exactly that set of ids (an HMAC
    the confirmation card carries back; the server recomputes the set and compares)."""

    kind: Kind
    included: tuple[Item, ...]
    left_out: tuple[tuple[Item, str], ...]
    digest: str

    @property
    def needs_confirmation(self) -> bool:
        return len(self.included) > BULK_CONFIRM_ABOVE

    @property
    def pid(self) -> str:
        return bulk_pid(self.kind)


def bulk_pid(kind: Kind) -> str:
    return f"bulk:{kind.value}"


class Decisions:
    def __init__(self, shared: Shared, runs: Runs, applier: Applier) -> None:
        self._live, self._store, self._tenants = shared.live, shared.store, shared.tenants
        self._reader, self._digests, self._listeners = (
            shared.reader,
            shared.digests,
            shared.listeners,
        )
        self._runs, self._applier = runs, applier

    async def decide(
        self, pid: str, verb: str, *, actor: Actor, digest: str, inputs: Mapping[str, str]
    ) -> Decision:
        """One card press. Refused unless the digest is ours, the item is pending and the
        verb fits its kind; a stale item (Entra changed since) is superseded, not applied."""
        if pid.startswith("guard:"):
            return await self._decide_guard(pid, verb, actor=actor, digest=digest)
        if verb == "unignore":
            return await self._unignore(pid, actor=actor, digest=digest)
        sp = await self._store.proposals.get(pid)
        if sp is None or not await self._digests.valid(pid, digest):
            return Decision(
                "not_found", None, "This item is not known to the bot (or the card was altered)."
            )
        item = await self._digests.item(sp)
        refusal = _refusal(sp, item, verb, inputs)
        if refusal is not None:
            return refusal
        fresh = await self._check_fresh(sp)
        if fresh is not None:
            return fresh
        if verb == "ignore":
            return await self._ignore(sp, actor)
        if verb == "pick_owner":
            return await self._pick_owner(sp, inputs["owner"], actor)
        return await self._applier.accept_and_apply(sp, verb, inputs, actor)

    async def bulk_set(self, kind: Kind) -> BulkSet:
        """The pending matches (or updates) Accept all (Apply all) would decide now, less
        those that need an individual look (``sync.plan.bulk``)."""
        if kind not in BULK_VERBS:
            raise InputError(f"there is no 'all' action for {kind.value} items")
        region = self._live.current.matching.default_region
        counts: dict[tuple[str, str], NumberCounts] = {}
        listings: dict[str, dict[str, DirectoryUser]] = {}
        included: list[Item] = []
        left_out: list[tuple[Item, str]] = []
        for sp in await self._store.proposals.pending(kind=kind):
            item = await self._digests.item(sp)
            directory = self._tenants.directories.get(sp.directory)
            if directory is None:
                left_out.append((item, f"the directory '{sp.directory}' is not configured"))
                continue
            if sp.directory not in listings:
                listings[sp.directory] = {d.id: d for d in await directory.list_users()}
            key = (sp.tenant, sp.directory)
            if key not in counts:
                users = await self._reader.stored_users(sp.tenant)
                counts[key] = number_counts(users.values(), listings[sp.directory].values(), region)
            d = listings[sp.directory].get(sp.proposal.app_user_id or "")
            why = needs_individual_look(sp.proposal, d, counts[key], region)
            if why is None:
                included.append(item)
            else:
                left_out.append((item, why))
        ids = ",".join(sorted(it.id for it in included))
        digest = await self._digests.digest(f"{bulk_pid(kind)}:{ids}")
        return BulkSet(kind, tuple(included), tuple(left_out), digest)

    async def decide_bulk(self, kind: Kind, digest: str, *, actor: Actor) -> list[Decision] | None:
        """Accept (apply) the items of ``bulk_set(kind)`` when ``digest`` is that set's digest
        as the server computes it now; None (nothing done) when it is not: a forged card,
        or the set changed since the admin saw the list."""
        current = await self.bulk_set(kind)
        if not hmac.compare_digest(digest.encode(), current.digest.encode()):
            return None
        verb = BULK_VERBS[kind]
        return [
            await self.decide(it.id, verb, actor=actor, digest=it.digest, inputs={})
            for it in current.included
        ]

    async def _check_fresh(self, sp: StoredProposal) -> Decision | None:
        """Refresh the tenant's view with a delta round; if the proposal no longer describes
        Entra, plan again (which supersedes it) and return the 'stale' decision."""
        rt = self._tenants.runtimes.get(sp.tenant)
        if rt is None:
            return None
        try:
            async with self._store.run_lock.hold(sp.tenant, ttl_s=60):
                reading = await self._reader.read(rt, self._live.current)
        except LockBusy:
            return None  # a sync is running right now; it will supersede stale items itself
        except SyncError as e:
            log.info("freshness check of %s skipped: %s", sp.id, e.code)
            return None
        p = sp.proposal
        ids = p.entra_ids or ((p.entra_id,) if p.entra_id else ())
        users = {u.id: u for u in reading.snapshot.users if u.id in ids}
        current: dict[str, EntraUser | None] = {i: users.get(i) for i in ids}
        directory = self._tenants.directories[sp.directory]
        dir_user = await directory.get(p.app_user_id) if p.app_user_id else None
        # only a new user's numbers depend on the chosen owners of shared numbers
        owners = await self._store.choices.number_owners(sp.tenant) if p.kind is Kind.NEW else None
        if still_valid(p, current, reading.snapshot, dir_user, self._live.current, owners):
            return None
        now = await self._store.proposals.get(sp.id)
        if now is not None and now.state is not ProposalState.PENDING:
            # decided by someone else while we looked (their write is what changed the data)
            who = now.decided_by or "someone"
            return Decision("already", await self._digests.item(now), f"Already handled by {who}.")
        result = await self._runs.plan_reading(rt, sp.directory, reading, Actor.system())
        replacement = next(
            (
                it
                for it in reversed(result.new_items)
                if (it.proposal.entra_id and it.proposal.entra_id == p.entra_id)
                or set(it.proposal.entra_ids) & set(ids)
            ),
            None,
        )
        old = await self._store.proposals.get(sp.id)
        item = replacement or (await self._digests.item(old) if old else None)
        return Decision(
            "stale",
            item,
            "The data in Entra changed since this card was posted; nothing was applied. "
            "Review the current values.",
        )

    async def _ignore(self, sp: StoredProposal, actor: Actor) -> Decision:
        """IGNORED; ignoring a match or a new user ignores the Entra user too."""
        try:
            done = await self._store.proposals.transition(
                sp.id,
                ProposalState.IGNORED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="ignore",
            )
        except ProposalNotPending as e:
            return await self._applier.already(sp.id, e)
        p = sp.proposal
        if p.kind in (Kind.MATCH, Kind.NEW) and p.entra_id:
            await self._store.choices.ignore(sp.tenant, p.entra_id)
        await self._store.audit_log.audit(
            actor.id,
            actor.name,
            f"ignore {p.kind.value}",
            tenant=sp.tenant,
            proposal_id=sp.id,
            entra_id=p.entra_id,
            app_user_id=p.app_user_id,
            before={"state": ProposalState.PENDING.value},
            after={"state": ProposalState.IGNORED.value, "reason": p.reason},
            subject=subject_of(p),
        )
        item = await self._digests.item(done)
        await self._listeners.item_changed(item)
        return Decision("done", item, f"Ignored by {actor.name}.")

    async def _pick_owner(self, sp: StoredProposal, owner: str, actor: Actor) -> Decision:
        """The chosen Entra user owns the shared number; the tenant is planned again."""
        proposals, result = self._store.proposals, {"owner": owner}
        try:
            await proposals.transition(
                sp.id,
                ProposalState.ACCEPTED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="pick_owner",
                result=result,
            )
            await self._store.choices.set_number_owner(sp.tenant, sp.proposal.number or "", owner)
            done = await proposals.transition(
                sp.id,
                ProposalState.APPLIED,
                actor_id=actor.id,
                actor_name=actor.name,
                verb="pick_owner",
                expect=ProposalState.ACCEPTED,
                result=result,
            )
        except ProposalNotPending as e:
            return await self._applier.already(sp.id, e)
        names = dict(zip(sp.proposal.entra_ids, sp.proposal.entra_labels, strict=False))
        candidates = [names.get(i) or i for i in sp.proposal.entra_ids]
        await self._store.audit_log.audit(
            actor.id,
            actor.name,
            "pick owner",
            tenant=sp.tenant,
            proposal_id=sp.id,
            entra_id=owner,
            before={"number": sp.proposal.number, "candidates": candidates, "owner": None},
            after={
                "number": sp.proposal.number,
                "candidates": candidates,
                "owner": names.get(owner) or owner,
            },
            subject=names.get(owner) or owner,
        )
        item = await self._digests.item(done)
        await self._listeners.item_changed(item)
        await self._runs.replan(sp.tenant, sp.directory, actor)
        return Decision("done", item, f"{actor.name} chose the owner of {sp.proposal.number}.")

    async def guard_id(self, tenant: str, directory: str) -> tuple[str, str]:
        pid = f"guard:{tenant}:{directory}"
        return pid, await self._digests.digest(pid)

    async def _decide_guard(self, pid: str, verb: str, *, actor: Actor, digest: str) -> Decision:
        """The removal guard's card: dismiss (nothing removed) or confirm (the held removals
        are proposed one by one: the tenant is planned again with the guard let through)."""
        if not await self._digests.valid(pid, digest):
            return Decision("not_found", None, NOT_ISSUED)
        _, tenant, directory = [*pid.split(":", 2), "", ""][:3]
        if verb not in ("guard_dismiss", "guard_confirm"):
            return Decision("refused", None, f"'{verb}' does not apply to the removal guard.")
        confirmed = verb == "guard_confirm"
        if confirmed:
            await self._store.choices.confirm_guard(tenant, directory)
        await self._store.audit_log.audit(
            actor.id,
            actor.name,
            "guard confirmed" if confirmed else "guard dismissed",
            tenant=tenant,
            before={"removals": "held back", "directory": directory},
            after={
                "removals": "proposed one by one" if confirmed else "dismissed",
                "directory": directory,
            },
        )
        if not confirmed:
            return Decision("done", None, f"Dismissed by {actor.name}; nothing was removed.")
        await self._runs.replan(tenant, directory, actor)
        return Decision(
            "done", None, f"Confirmed by {actor.name}: the removals are proposed one by one."
        )

    async def unignore_digest(self, entra_id: str) -> str:
        return await self._digests.digest(f"unignore:{entra_id}")

    async def _unignore(self, entra_id: str, *, actor: Actor, digest: str) -> Decision:
        """Stop ignoring an Entra user (in the first tenant that ignores it) and plan again."""
        if not await self._digests.valid(f"unignore:{entra_id}", digest):
            return Decision("not_found", None, NOT_ISSUED)
        for tenant in list(self._tenants.runtimes) or [CONNECTED]:
            if await self._store.choices.unignore(tenant, entra_id):
                user = (await self._reader.stored_users(tenant)).get(entra_id)
                await self._store.audit_log.audit(
                    actor.id,
                    actor.name,
                    "unignore",
                    tenant=tenant,
                    entra_id=entra_id,
                    before={"ignored": True},
                    after={"ignored": False},
                    subject=entra_label(user) if user is not None else None,
                )
                for d in self._tenants.directories_of(tenant):
                    await self._runs.replan(tenant, d, actor)
                return Decision("done", None, f"Un-ignored by {actor.name}.")
        return Decision("not_found", None, "This user is not ignored.")


def _refusal(
    sp: StoredProposal, item: Item, verb: str, inputs: Mapping[str, str]
) -> Decision | None:
    """Why a card press on a stored proposal cannot go ahead (None: it can)."""
    kind = sp.proposal.kind
    if verb == "refresh":
        return Decision("done", item, "current state")
    if sp.state is not ProposalState.PENDING:
        return Decision("already", item, f"Already handled by {sp.decided_by or 'someone'}.")
    if verb not in VERBS or kind not in VERBS[verb]:
        return Decision("refused", item, f"'{verb}' does not apply to this {kind.value} item.")
    if verb == "delete_user":
        return Decision(
            "confirm", item, "Delete the user in the phone system? This cannot be undone."
        )
    if verb == "link" and not inputs.get("target"):
        return Decision("refused", item, "Choose the directory user to link first.")
    if verb == "pick_owner" and inputs.get("owner") not in sp.proposal.entra_ids:
        return Decision("refused", item, "Choose one of the Entra users of this conflict.")
    return None
