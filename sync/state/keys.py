"""Every Redis key the product uses, built in one place: the whole schema on one screen.

``Keys(prefix)`` lets tests and several deployments share one Redis without touching each
other. Tenants and directories are named in the config; proposal ids are content hashes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Keys:
    prefix: str = "es:"

    # --- proposals (state machine in sync.state.store) -------------------------------------------
    def proposal(self, proposal_id: str) -> str:  # hash: data, state, actor, at, tenant, dir
        return f"{self.prefix}p:{proposal_id}"

    def pending(self, tenant: str, directory: str) -> str:  # set of pending proposal ids
        return f"{self.prefix}pending:{tenant}:{directory}"

    def intents(self) -> str:  # set of accepted-but-not-applied proposal ids (crash recovery)
        return f"{self.prefix}intents"

    def card_ref(self, proposal_id: str) -> str:  # where the proposal's card was posted
        return f"{self.prefix}card:{proposal_id}"

    # --- per tenant ---------------------------------------------------------------------------
    def ignored(self, tenant: str) -> str:  # set of Entra ids
        return f"{self.prefix}ignored:{tenant}"

    def number_owners(self, tenant: str) -> str:  # hash: E.164 -> Entra id
        return f"{self.prefix}owners:{tenant}"

    def delta_link(self, tenant: str, directory: str) -> str:
        return f"{self.prefix}delta:{tenant}:{directory}"

    def snapshot(self, tenant: str) -> str:  # hash (the old layout; save_snapshot drops it)
        return f"{self.prefix}snap:{tenant}"

    def snapshot_parts(self, tenant: str) -> str:  # list: JSON arrays of <= 1,000 users each
        return f"{self.prefix}snapparts:{tenant}"

    def snapshot_overlay(self, tenant: str) -> str:  # hash: Entra id -> user JSON (deltas)
        return f"{self.prefix}snapover:{tenant}"

    def snapshot_removed(self, tenant: str) -> str:  # set: Entra ids removed by deltas
        return f"{self.prefix}snapgone:{tenant}"

    def snapshot_soft_deleted(self, tenant: str) -> str:  # hash: Entra id -> restorable until
        return f"{self.prefix}snapsoft:{tenant}"

    def snapshot_staging(self, tenant: str) -> str:  # save_snapshot writes here, then RENAME
        return f"{self.prefix}snapnew:{tenant}"

    def last_sync(self, tenant: str) -> str:  # hash: at, status, error, counters
        return f"{self.prefix}lastsync:{tenant}"

    def counter_bumps(self, tenant: str) -> str:  # hash: synced/syncable changes since last run
        return f"{self.prefix}bumps:{tenant}"

    def user_last_sync(self, tenant: str) -> str:  # hash: Entra id -> ISO time
        return f"{self.prefix}usersync:{tenant}"

    def lock(self, tenant: str) -> str:  # one run per tenant at a time (SET NX PX)
        return f"{self.prefix}lock:{tenant}"

    def schedule_claim(self, tenant: str, due: str) -> str:  # one replica runs a due slot
        return f"{self.prefix}schedclaim:{tenant}:{due}"

    def guard_confirmed(self, tenant: str, directory: str) -> str:
        return f"{self.prefix}guardok:{tenant}:{directory}"

    def credentials(self, tenant: str) -> str:  # hash; the secret encrypted (Fernet)
        return f"{self.prefix}cred:{tenant}"

    def settings(self) -> str:  # JSON of settings edited in Teams (overrides the file)
        return f"{self.prefix}settings"

    # --- the store itself ----------------------------------------------------------------------
    def data_format(self) -> str:  # the stored data-format version (sync.state.dataformat)
        return f"{self.prefix}format"

    # --- audit ------------------------------------------------------------------------------
    def audit(self) -> str:  # stream: who, what, before, after, when
        return f"{self.prefix}audit"

    # --- Teams ------------------------------------------------------------------------------
    def conversations(self) -> str:  # hash: conversation id -> reference JSON
        return f"{self.prefix}conv"

    def notify_channel(self) -> str:  # the conversation id to post into
        return f"{self.prefix}notify"

    def post_window(self, conversation: str) -> str:  # sorted set of post times (rate limit)
        return f"{self.prefix}posts:{conversation}"

    def greeted(self) -> str:  # hash: conversation id -> when greeted (HSETNX: greet once)
        return f"{self.prefix}greeted"

    def reminded(self, day: str) -> str:  # the reminder of that day (YYYY-MM-DD) was posted
        return f"{self.prefix}reminded:{day}"

    # --- built-in directory -------------------------------------------------------------------
    def dir_user(self, directory: str, user_id: str) -> str:  # JSON of one user
        return f"{self.prefix}dir:{directory}:u:{user_id}"

    def dir_users(self, directory: str) -> str:  # hash: user id -> JSON (all users)
        return f"{self.prefix}dir:{directory}:users"

    def dir_index(self, directory: str, kind: str) -> str:  # hash: phone/email/entra -> ids
        return f"{self.prefix}dir:{directory}:ix:{kind}"

    def dir_seq(self, directory: str) -> str:  # counter for new user ids
        return f"{self.prefix}dir:{directory}:seq"

    # --- e-mail notifications -----------------------------------------------------------------
    def mail_sent(self) -> str:  # hash: "<tenant>/<directory>" -> what was last mailed (JSON)
        return f"{self.prefix}mail:sent"

    def mail_status(self) -> str:  # JSON: the last mail's result (status shows it)
        return f"{self.prefix}mail:status"
