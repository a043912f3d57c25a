"""Who may reach what: the API key, the `Host` a request is addressed to, and for the admin API
(`/_mock/...`, which reads every prompt and replaces every rule) its `Origin` and content type.

A mock on a developer's laptop is reachable by every web page the developer opens. A page of
another origin can send "simple" requests (a form's POST, a `fetch` with `text/plain`) without
a preflight, and through DNS rebinding its own name can point at 127.0.0.1, so that the browser
sends it our answers as same-origin. Hence, whatever the configuration:

- a request whose `Host` is not this machine's loopback, the address it arrived at, the host
  the server was bound to or one of `allowed_hosts` is refused: a rebinding page sends its own
  name (an IP address literal cannot be rebound, and the one a connection arrived at is ours);
- an admin request from a browser page (an `Origin`) is refused unless `cors.origins` lists
  that origin by name (`*` opens the API to any page, never the admin API);
- an admin `POST`/`PUT` must say it sends JSON or YAML, which no page can send to another
  origin without a preflight, and preflights of the admin API are answered only for the
  origins listed;
- with an `apiKey`, the admin API needs it as the API does.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

from ..scenario.model import Config, ErrorSpec
from ..wire.errors import invalid

ADMIN_PREFIX = "/_mock/"
ADMIN_BODY_TYPES = ("application/json", "application/yaml", "application/x-yaml", "text/yaml")
LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def is_admin(path: str) -> bool:
    return path.startswith(ADMIN_PREFIX) or path == "/_mock"


class Access:
    """The checks of one configuration, for a server bound to `bound_host` (the `--host` given);
    `extra_hosts` are allowed besides the configuration's `allowed_hosts` (`--allowed-host`)."""

    def __init__(self, config: Config, bound_host: str | None = None, extra_hosts: tuple[str, ...] = ()):
        self.api_key = config.api_key
        where = f" ({config.api_key_at})" if config.api_key_at is not None else ""
        self.key_hint = (f"openai-mock takes the key set as `apiKey` in its configuration{where}: send it as "
                         "the client's api_key (MockServer.api_key has it; MockServer's and the pytest plugin's "
                         "clients send it for you).")
        self.bound_host = _hostname(bound_host) if bound_host else None
        names = tuple(name.lower().rstrip(".") for name in config.allowed_hosts + extra_hosts)
        self.any_host = "*" in names
        self.hosts = frozenset(n for n in names if not n.startswith("."))
        self.domains = tuple(n for n in names if n.startswith("."))
        # origins listed by name (`*` loads as None): only these may reach the admin API
        self.admin_origins = frozenset(config.cors_origins or ())
        self._hosts_seen: dict[tuple[str, str | None], bool] = {}  # (Host, local address) -> allowed

    def refusal(self, method: str, path: str, header: Callable[[str], str | None],
                local: str | None) -> ErrorSpec | None:
        """Why this request must not be answered, or None. `header(name)` reads a request header
        (lower-case name); `local` is the address the connection arrived at."""
        host = header("host")
        if host is not None and not self.host_allowed(host, local):
            return invalid(
                f"Host '{host}' is not allowed: openai-mock answers requests addressed to this machine's "
                "loopback (localhost, 127.0.0.1, [::1]), to the address it is bound to, or to a name "
                "listed in the configuration's `allowed_hosts` (or `serve --allowed-host`). Add the name "
                "there if you reach the mock by it on purpose.", code="host_not_allowed", status=403)
        if not is_admin(path):
            return None
        origin = header("origin")
        if origin is not None and origin not in self.admin_origins:
            return invalid(
                f"Origin '{origin}' may not use the admin API (/_mock/...): it reads every prompt and "
                "changes every rule. List the origin by name in the configuration's `cors.origins` to "
                "allow it.", code="origin_not_allowed", status=403)
        if method == "OPTIONS":
            return None
        if method in ("POST", "PUT"):
            given = (header("content-type") or "").partition(";")[0].strip().lower()
            if given not in ADMIN_BODY_TYPES:
                shown = f"'{given}'" if given else "none"
                return invalid(
                    f"Unsupported Content-Type for {method} {path} (got {shown}): send "
                    "Content-Type: application/json (or application/yaml).",
                    code="unsupported_media_type", status=415)
        return self.key_refusal(header("authorization"))

    def key_refusal(self, given: str | None) -> ErrorSpec | None:
        """The 401 for a missing or wrong key, when the configuration has one."""
        if self.api_key is None:
            return None
        scheme, _, token = (given or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return invalid(
                "You didn't provide an API key. You need to provide your API key in an Authorization "
                "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
                "field (with blank username) if you're accessing the API from your browser and are "
                f"prompted for a username. {self.key_hint}", code="invalid_api_key", status=401)
        if not hmac.compare_digest(token.encode(), self.api_key.encode()):  # constant time
            return invalid(f"Incorrect API key provided: {_mask(token)}. {self.key_hint}",
                           code="invalid_api_key", status=401)
        return None

    def host_allowed(self, host: str, local: str | None) -> bool:
        key = (host, local)
        known = self._hosts_seen.get(key)
        if known is None:
            known = self._host_allowed(_hostname(host), local)
            if len(self._hosts_seen) >= 1024:  # a client sending a new Host each time: stay small
                self._hosts_seen.clear()
            self._hosts_seen[key] = known
        return known

    def _host_allowed(self, name: str, local: str | None) -> bool:
        if self.any_host or name in self.hosts or name == self.bound_host or is_loopback(name):
            return True
        if any(name.endswith(domain) or name == domain[1:] for domain in self.domains):
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return False
        return local is not None and _same_address(address, local)


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server to this machine."""
    name = _hostname(host)
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _hostname(host: str) -> str:
    """The name in a Host header (or a --host): no port, no brackets, lower case, no final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    name, colon, port = host.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        host = name
    return host.rstrip(".")


def _same_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address, local: str) -> bool:
    try:
        other = ipaddress.ip_address(local.partition("%")[0])
    except ValueError:
        return False
    if isinstance(other, ipaddress.IPv6Address) and other.ipv4_mapped is not None:
        other = other.ipv4_mapped
    return address == other


def _mask(key: str) -> str:
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]


def cors_headers(config: Config, path: str, origin: str | None) -> list[tuple[str, str]]:
    """CORS response headers. The API: any origin unless `cors.origins` narrows it. The admin
    API: only an origin listed by name (a refused origin never gets this far)."""
    if is_admin(path):
        if origin is None or origin not in (config.cors_origins or ()):
            return []
        return [("vary", "Origin"), ("access-control-allow-origin", origin)]
    if config.cors_origins is None:
        return [("access-control-allow-origin", "*")]
    if origin is not None and origin in config.cors_origins:
        return [("vary", "Origin"), ("access-control-allow-origin", origin)]
    return [("vary", "Origin")]
