"""Where the bot may send: the ``serviceUrl`` allow-list. The bot's bearer token goes with
every send, so an activity naming another host is refused on the way in and on the way out.

- ``[bot] service_url_allow`` set: exactly those origins (``https://host`` for any port of that
  host, ``https://host:port`` for one port);
- else credentialed mode: Teams' Bot Connector hosts over https (public, GCC, GCC High, DoD);
- else local mode: loopback hosts only.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

# Teams' Bot Connector (serviceUrl hosts): public cloud, US GCC, US GCC High, US DoD.
TEAMS_SERVICE_HOSTS = frozenset(
    {
        "smba.trafficmanager.net",
        "smba.infra.gcc.teams.microsoft.com",
        "smba.infra.gov.teams.microsoft.us",
        "smba.infra.dod.teams.microsoft.us",
    }
)
MAX_URL = 2048


def _split(url: str) -> SplitResult | None:
    if not url or len(url) > MAX_URL:
        return None
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
        return None
    return parts


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class ServiceUrlPolicy:
    local_mode: bool
    allow: tuple[str, ...] = ()

    def allows(self, url: str) -> bool:
        parts = _split(url)
        if parts is None or parts.hostname is None:
            return False
        host = parts.hostname.lower()
        if self.allow:
            return any(self._matches(parts, host, entry) for entry in self.allow)
        if self.local_mode:
            return is_loopback(host)
        return parts.scheme == "https" and host in TEAMS_SERVICE_HOSTS

    @staticmethod
    def _matches(parts: SplitResult, host: str, entry: str) -> bool:
        want = _split(entry)
        if want is None or want.hostname is None:
            return False
        same_port = want.port is None or want.port == parts.port
        return want.scheme == parts.scheme and want.hostname.lower() == host and same_port
