"""Fetch task images without becoming an open proxy (SSRF) or a local-file reader.

Accepted task values:

- Label Studio file paths and absolute URLs on ``LABEL_STUDIO_URL``'s origin: fetched from Label
  Studio with ``Authorization: Token <LABEL_STUDIO_API_KEY>``, but only when the path is one of
  ``/data/upload/<file>`` (no query), ``/data/local-files/?d=<relative image path>``,
  ``/storage-data/uploaded/?filepath=<relative image path>`` or
  ``/tasks/<id>/resolve/?fileuri=<...>`` (:func:`check_label_studio_path`). Percent-encoding is
  decoded before the check (``%2e%2e``), double encoding is refused, and every refusal gets the
  same answer whatever the path, so the backend cannot be used to probe Label Studio's files.
- Other ``http(s)`` URLs only when their host is in ``ALLOWED_HOSTS``. A host listed exactly may
  be private (an internal image server you chose); a host matched by a ``*.domain`` pattern must
  resolve to public addresses only. No API key is sent there. Redirects are followed by hand
  (at most 3), each hop checked again.
- Local paths (or ``file://``) only inside ``LOCAL_ROOTS`` (after resolving symlinks).

Every download is limited to ``MAX_IMAGE_BYTES`` and to a total deadline of ``FETCH_TIMEOUT``
seconds (connection, redirects and body together: a server trickling a byte at a time is cut at
the deadline); the pixel limit is checked from the image header before decoding.
"""

from __future__ import annotations

import ipaddress
import logging
import posixpath
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

import httpx

log = logging.getLogger(__name__)

LS_PATH_PREFIXES = ("/data/upload/", "/data/local-files/", "/tasks/", "/storage-data/")
"""Paths that Label Studio itself serves (relative task values)."""
MAX_REDIRECTS = 3
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")

REFUSED_LS_PATH = (
    "refusing image reference: not a Label Studio file path; accepted: /data/upload/<project>/<file>, "
    "/data/local-files/?d=<relative image path>, /storage-data/uploaded/?filepath=<relative image path>, "
    "/tasks/<id>/resolve/?fileuri=<...>"
)
"""The one answer (403) for every refused Label Studio path, so refusals reveal nothing about the path."""
_TASK_RESOLVE = re.compile(r"^/tasks/[0-9]{1,12}/(resolve|presign)/?$")

Resolver = Callable[[str], list[str]]


class FetchError(Exception):
    """An image could not (or may not) be fetched; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _refused() -> FetchError:
    return FetchError(REFUSED_LS_PATH, 403)


def _clean_relative(path: str) -> bool:
    """A relative file path with no ``..``/``.``/empty segments, no backslash, no control characters,
    no further percent-encoding, ending in an image suffix."""
    if not path or path.startswith(("/", "~")) or "\\" in path or "%" in path:
        return False
    if any(ord(c) < 32 or ord(c) == 127 for c in path):
        return False
    if any(seg in ("", ".", "..") for seg in path.split("/")):
        return False
    return path.lower().endswith(IMAGE_SUFFIXES)


def check_label_studio_path(value: str) -> str:
    """``path?query`` of a Label Studio file reference (relative, or an absolute URL on Label Studio's
    origin), after checking it is one of the accepted file paths; :class:`FetchError` (403, always
    :data:`REFUSED_LS_PATH`) otherwise."""
    parts = urlsplit(value)
    if parts.fragment or parts.username is not None or parts.password is not None:
        raise _refused()
    raw_path, query = parts.path, parts.query
    if "\\" in value or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise _refused()
    path = unquote(raw_path)
    if "%" in path or not path.startswith("/"):  # double encoding, or no path at all
        raise _refused()
    segments = path[1:].rstrip("/").split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise _refused()
    try:
        params = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise _refused() from None
    keys = [k for k, _ in params]
    if path.startswith("/data/upload/") and not query and _clean_relative(path[len("/data/upload/") :]):
        return raw_path
    if path == "/data/local-files/" and keys == ["d"] and _clean_relative(params[0][1]):
        return f"{raw_path}?{query}"
    if path == "/storage-data/uploaded/" and keys == ["filepath"] and _clean_relative(params[0][1]):
        return f"{raw_path}?{query}"
    if _TASK_RESOLVE.match(path) and keys == ["fileuri"] and params[0][1]:
        return f"{raw_path}?{query}"
    raise _refused()


class _Deadline:
    """A total deadline for one download: at expiry the connection's socket is shut down, which
    ends a read blocked on a server that sends a byte at a time (httpx's timeouts are per read)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self.expired = False
        self._streams: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def remaining(self) -> float:
        return self.at - time.monotonic()

    def passed(self) -> bool:
        return self.expired or self.remaining() <= 0

    def watch(self, stream: Any) -> None:
        """Shut ``stream`` (an httpcore network stream) down at the deadline."""
        if stream is None:
            return
        with self._lock:
            self._streams.append(stream)
            expired = self.expired
        if expired:
            _shutdown(stream)

    def trace(self, name: str, info: dict[str, Any]) -> None:
        """httpcore ``trace`` extension: catch the stream of each new connection."""
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            streams = list(self._streams)
        for stream in streams:
            _shutdown(stream)

    def cancel(self) -> None:
        self._timer.cancel()


def _shutdown(stream: Any) -> None:
    try:
        sock = stream.get_extra_info("socket")
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


def resolve_host(host: str) -> list[str]:
    """All addresses ``host`` resolves to (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise FetchError(f"cannot resolve image host {host!r} ({exc})", 502) from None
    return sorted({str(info[4][0]) for info in infos})


def is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not (
        ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


@dataclass(frozen=True)
class Fetched:
    """Raw bytes of one image plus its file suffix (``.png``...) and where it came from."""

    data: bytes
    suffix: str
    source: str


class ImageFetcher:
    """Fetches task images under the rules in this module's docstring.

    ``transport`` (an ``httpx`` transport) and ``resolver`` exist for tests.
    """

    def __init__(
        self,
        *,
        label_studio_url: str = "",
        api_key: str = "",
        allowed_hosts: tuple[str, ...] = (),
        local_roots: tuple[Path, ...] = (),
        max_bytes: int = 32 * 1024 * 1024,
        timeout: float = 20.0,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver | None = None,
    ):
        self._ls_url = label_studio_url.rstrip("/")
        self._ls_origin = _origin(self._ls_url) if self._ls_url else None
        self._api_key = api_key
        self._allowed = tuple(h.lower() for h in allowed_hosts)
        self._roots = tuple(Path(r).resolve() for r in local_roots)
        self._max_bytes = int(max_bytes)
        self._timeout = float(timeout)
        self._resolver = resolver or resolve_host
        self._client = httpx.Client(timeout=timeout, follow_redirects=False, transport=transport)

    def close(self) -> None:
        self._client.close()

    # -- entry point -----------------------------------------------------------------------------
    def fetch(self, value: str) -> Fetched:
        """Bytes of the image a task value refers to; raises :class:`FetchError`."""
        if not isinstance(value, str) or not value.strip():
            raise FetchError(f"task image value must be a non-empty string, got {value!r}")
        value = value.strip()
        scheme = urlsplit(value).scheme.lower()
        if value.startswith(LS_PATH_PREFIXES):
            return self._from_label_studio(value)
        if scheme in ("http", "https"):
            if self._ls_origin is not None and _origin(value) == self._ls_origin:
                return self._from_label_studio(value)
            return self._from_allowed_host(value)
        if scheme == "file":
            return self._from_local(unquote(urlsplit(value).path))
        if scheme in ("",) and value.startswith("/"):
            return self._from_local(value)
        if scheme in ("s3", "gs", "azure-blob", "azure-spi"):
            raise FetchError(
                f"cannot read {value!r} directly: connect that bucket as cloud storage in Label Studio so "
                f"that it serves the files (presigned or proxied URLs), then re-sync the storage",
                400,
            )
        raise FetchError(
            f"unsupported image reference {value!r}: expected a Label Studio path "
            f"(/data/upload/...), an http(s) URL or a local path",
            400,
        )

    # -- sources ---------------------------------------------------------------------------------
    def _from_label_studio(self, value: str) -> Fetched:
        if not self._ls_url:
            raise FetchError(
                f"task image {value!r} is served by Label Studio but LABEL_STUDIO_URL is not set; set "
                f"LABEL_STUDIO_URL (and LABEL_STUDIO_API_KEY) in the backend's environment",
                400,
            )
        if not self._api_key:
            raise FetchError(
                "LABEL_STUDIO_API_KEY is not set: the backend cannot download task images "
                "from Label Studio (Account & Settings > Access token)",
                400,
            )
        if not value.startswith("/"):  # an absolute URL on Label Studio's origin: its path below LABEL_STUDIO_URL
            parts = urlsplit(value)
            base = urlsplit(self._ls_url).path.rstrip("/")
            if parts.path != base and not parts.path.startswith(base + "/"):
                raise _refused()
            if parts.username is not None or parts.password is not None or parts.fragment:
                raise _refused()
            value = parts.path[len(base) :] + (f"?{parts.query}" if parts.query else "")
        url = self._ls_url + check_label_studio_path(value)  # the same check for relative and absolute values
        headers = {"Authorization": f"Token {self._api_key}"}
        return self._download(url, headers=headers, trusted_origin=self._ls_origin)

    def _from_allowed_host(self, url: str) -> Fetched:
        self._check_host(url)
        return self._download(url, headers={}, trusted_origin=None)

    def _check_host(self, url: str) -> None:
        host = (urlsplit(url).hostname or "").lower()
        if not host:
            raise FetchError(f"image URL {url!r} has no host", 400)
        if host in self._allowed:
            return  # listed exactly: trusted even when private
        if not any(p.startswith("*.") and host.endswith(p[1:]) for p in self._allowed):
            raise FetchError(
                f"refusing to fetch {url!r}: host {host!r} is neither Label Studio's "
                f"({urlsplit(self._ls_url).hostname if self._ls_url else 'LABEL_STUDIO_URL unset'}) nor in "
                f"ALLOWED_HOSTS; add it to ALLOWED_HOSTS if it is an image server you trust",
                403,
            )
        bad = [a for a in self._resolver(host) if not is_public(a)]
        if bad:
            raise FetchError(
                f"refusing to fetch {url!r}: host {host!r} resolves to non-public address(es) {bad}; list the "
                f"host exactly in ALLOWED_HOSTS if that internal server is intended",
                403,
            )

    def _from_local(self, path: str) -> Fetched:
        if not self._roots:
            raise FetchError(f"refusing local path {path!r}: no LOCAL_ROOTS configured", 403)
        p = Path(path)
        if not p.is_absolute():
            raise FetchError(f"local image path must be absolute, got {path!r}", 400)
        real = p.resolve()
        if not any(real.is_relative_to(root) for root in self._roots):
            raise FetchError(f"refusing local path {path!r}: outside LOCAL_ROOTS {[str(r) for r in self._roots]}", 403)
        if not real.is_file():
            raise FetchError(f"local image {path!r} does not exist", 404)
        size = real.stat().st_size
        if size > self._max_bytes:
            raise FetchError(f"image {path!r} has {size} bytes, over MAX_IMAGE_BYTES={self._max_bytes}", 413)
        return Fetched(real.read_bytes(), real.suffix.lower() or ".img", str(real))

    def _download(self, url: str, *, headers: dict[str, str], trusted_origin: tuple[str, str, int] | None) -> Fetched:
        deadline = _Deadline(self._timeout)
        try:
            return self._download_within(url, headers=headers, trusted_origin=trusted_origin, deadline=deadline)
        except httpx.HTTPError as exc:
            if deadline.passed():
                raise self._late(url) from None
            raise FetchError(f"could not download {_safe(url)}: {exc.__class__.__name__}", 502) from None
        finally:
            deadline.cancel()

    def _late(self, url: str) -> FetchError:
        return FetchError(f"image {_safe(url)} did not arrive within FETCH_TIMEOUT={self._timeout:g} s", 504)

    def _download_within(
        self, url: str, *, headers: dict[str, str], trusted_origin: tuple[str, str, int] | None, deadline: _Deadline
    ) -> Fetched:
        for _ in range(MAX_REDIRECTS + 1):
            remaining = deadline.remaining()
            if remaining <= 0:
                raise self._late(url)
            extensions = {"trace": deadline.trace}
            with self._client.stream("GET", url, headers=headers, timeout=remaining, extensions=extensions) as resp:
                deadline.watch(resp.extensions.get("network_stream"))  # a reused connection
                if resp.is_redirect:
                    target = urljoin(url, resp.headers.get("location", ""))
                    if trusted_origin is None or _origin(target) != trusted_origin:
                        headers = {}  # never forward the API key to another origin
                        trusted_origin = None
                        if urlsplit(target).scheme.lower() not in ("http", "https"):
                            raise FetchError(f"refusing redirect from {_safe(url)} to {_safe(target)}", 403)
                        self._check_host(target)
                    elif headers:
                        check_label_studio_path(target)  # the token goes along: the same path rules
                    url = target
                    continue
                if resp.status_code in (401, 403) and "Authorization" in headers:
                    raise FetchError(
                        f"Label Studio refused the API key (HTTP {resp.status_code}) for {_safe(url)}: set "
                        f"LABEL_STUDIO_API_KEY to a valid token of a user of this project",
                        502,
                    )
                if resp.status_code != 200:
                    raise FetchError(
                        f"image server answered HTTP {resp.status_code} for {_safe(url)}",
                        404 if resp.status_code == 404 else 502,
                    )
                length = resp.headers.get("content-length")
                if length and length.isdigit() and int(length) > self._max_bytes:
                    raise FetchError(
                        f"image {_safe(url)} has {length} bytes, over MAX_IMAGE_BYTES={self._max_bytes}", 413
                    )
                chunks, total = [], 0
                for chunk in resp.iter_bytes():
                    if deadline.passed():
                        raise self._late(url)
                    total += len(chunk)
                    if total > self._max_bytes:
                        raise FetchError(f"image {_safe(url)} is over MAX_IMAGE_BYTES={self._max_bytes}", 413)
                    chunks.append(chunk)
                if deadline.passed():
                    raise self._late(url)
                return Fetched(b"".join(chunks), _suffix(url, resp.headers.get("content-type", "")), _safe(url))
        raise FetchError(f"too many redirects fetching {_safe(url)}", 502)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def _safe(url: str) -> str:
    """The URL without user-info or query string (which may carry secrets), for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    query = "?..." if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"


_TYPES = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/webp": ".webp",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/gif": ".gif",
}


def _suffix(url: str, content_type: str) -> str:
    ct = content_type.split(";", 1)[0].strip().lower()
    if ct in _TYPES:
        return _TYPES[ct]
    parts = urlsplit(url)
    for candidate in (unquote(parts.query).rsplit("/", 1)[-1], parts.path):
        ext = posixpath.splitext(candidate)[1].lower()
        if ext in (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"):
            return ext
    return ".img"
