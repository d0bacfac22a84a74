"""Image fetching: Label Studio URLs with the key, SSRF refusals, local roots, size limits."""

import socket
import threading
import time

import httpx
import pytest

from labelstudio_backend.fetch import REFUSED_LS_PATH, FetchError, ImageFetcher, check_label_studio_path, is_public

LS = "http://ls.internal:8080"
KEY = "k-0123456789"


def fetcher(handler=None, **kw):
    handler = handler or (lambda req: httpx.Response(200, content=b"img", headers={"content-type": "image/png"}))
    opts = dict(
        label_studio_url=LS,
        api_key=KEY,
        transport=httpx.MockTransport(handler),
        resolver=lambda host: ["93.184.216.34"],
    )
    opts.update(kw)
    return ImageFetcher(**opts)


def test_label_studio_paths_get_the_token():
    seen = []

    def handler(req):
        seen.append(req)
        return httpx.Response(200, content=b"png-bytes", headers={"content-type": "image/png"})

    f = fetcher(handler)
    got = f.fetch("/data/upload/3/abc.png")
    assert got.data == b"png-bytes" and got.suffix == ".png"
    assert str(seen[0].url) == f"{LS}/data/upload/3/abc.png"
    assert seen[0].headers["authorization"] == f"Token {KEY}"
    f.fetch("/data/local-files/?d=images/x.jpg")
    assert seen[1].url.params["d"] == "images/x.jpg"
    f.fetch(f"{LS}/data/upload/3/abc.png")  # absolute URL on Label Studio's origin
    assert seen[2].headers["authorization"] == f"Token {KEY}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/x.png",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost/x.png",
        "https://evil.example.com/x.png",
        "http://ls.internal:9999/data/upload/1/x.png",  # Label Studio's host, other port: not its origin
    ],
)
def test_hosts_not_allowed_are_refused(url):
    calls = []
    f = fetcher(lambda req: calls.append(req) or httpx.Response(200, content=b"x"))
    with pytest.raises(FetchError, match="ALLOWED_HOSTS") as err:
        f.fetch(url)
    assert err.value.status == 403 and not calls


def test_allowed_host_gets_no_token():
    seen = []
    f = fetcher(lambda req: seen.append(req) or httpx.Response(200, content=b"x"), allowed_hosts=("img.example.com",))
    f.fetch("https://img.example.com/a.jpg")
    assert "authorization" not in seen[0].headers


def test_wildcard_host_resolving_to_private_address_is_refused():
    f = fetcher(allowed_hosts=("*.example.com",), resolver=lambda host: ["10.0.0.5"])
    with pytest.raises(FetchError, match="non-public") as err:
        f.fetch("https://cdn.example.com/a.jpg")
    assert err.value.status == 403
    fetcher(allowed_hosts=("*.example.com",)).fetch("https://cdn.example.com/a.jpg")  # public: fine


def test_redirect_off_origin_is_rechecked_and_drops_the_token():
    seen = []

    def handler(req):
        seen.append(req)
        if req.url.host == "ls.internal":
            return httpx.Response(302, headers={"location": "http://127.0.0.1:22/secret"})
        return httpx.Response(200, content=b"x")

    with pytest.raises(FetchError, match="ALLOWED_HOSTS"):
        fetcher(handler).fetch("/data/upload/1/a.png")
    assert len(seen) == 1


def test_other_schemes_and_traversal_are_refused():
    f = fetcher()
    for value, status in (
        ("s3://bucket/a.png", 400),
        ("ftp://x/a.png", 400),
        ("/data/upload/../../api/users", 403),
        ("", 400),
    ):
        with pytest.raises(FetchError) as err:
            f.fetch(value)
        assert err.value.status == status, value


def test_local_paths_only_inside_roots(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    (root / "a.png").write_bytes(b"abc")
    (tmp_path / "secret.txt").write_bytes(b"no")
    (root / "link.png").symlink_to(tmp_path / "secret.txt")
    f = fetcher(local_roots=(root,))
    assert f.fetch(str(root / "a.png")).data == b"abc"
    assert f.fetch(f"file://{root / 'a.png'}").data == b"abc"
    for bad in (str(tmp_path / "secret.txt"), str(root / ".." / "secret.txt"), str(root / "link.png")):
        with pytest.raises(FetchError, match="outside LOCAL_ROOTS"):
            f.fetch(bad)
    with pytest.raises(FetchError, match="no LOCAL_ROOTS"):
        fetcher().fetch(str(root / "a.png"))


def test_size_limit_from_header_and_from_stream():
    f = fetcher(lambda req: httpx.Response(200, content=b"x" * 100), max_bytes=50)
    with pytest.raises(FetchError, match="MAX_IMAGE_BYTES") as err:
        f.fetch("/data/upload/1/a.png")
    assert err.value.status == 413

    def chunked(req):
        return httpx.Response(200, content=iter([b"x" * 30, b"x" * 30]))  # no content-length

    with pytest.raises(FetchError, match="MAX_IMAGE_BYTES"):
        fetcher(chunked, max_bytes=50).fetch("/data/upload/1/a.png")


def test_label_studio_refusing_the_key_says_so_without_the_key():
    f = fetcher(lambda req: httpx.Response(401))
    with pytest.raises(FetchError, match="refused the API key") as err:
        f.fetch("/data/upload/1/a.png")
    assert KEY not in str(err.value)


def test_missing_label_studio_url_is_explained():
    with pytest.raises(FetchError, match="LABEL_STUDIO_URL is not set"):
        ImageFetcher().fetch("/data/upload/1/a.png")


def test_is_public():
    assert is_public("93.184.216.34") and is_public("2606:2800:220:1::1")
    for a in (
        "127.0.0.1",
        "10.1.2.3",
        "192.168.0.1",
        "172.16.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "0.0.0.0",
    ):
        assert not is_public(a), a


# -- Label Studio paths: only file paths, checked after decoding, all refused alike -------------------------
@pytest.mark.parametrize(
    "value",
    [
        "/data/upload/3/abc.png",
        "/data/upload/3/My%20Photo.JPG",
        "/data/local-files/?d=images/x.jpg",
        "/data/local-files/?d=images%2Fsub%2Fx.png",
        "/storage-data/uploaded/?filepath=upload/3/abc.png",
        "/tasks/12/resolve/?fileuri=czM6Ly9idWNrZXQvYS5wbmc=",
        f"{LS}/data/upload/3/abc.png",
    ],
)
def test_label_studio_file_paths_are_accepted(value):
    assert check_label_studio_path(value.removeprefix(LS)).startswith("/")


@pytest.mark.parametrize(
    "value",
    [
        "/data/local-files/?d=/etc/passwd",
        "/data/local-files/?d=etc/passwd",
        "/data/local-files/?d=..%2F..%2Fetc%2Fx.png",
        "/data/local-files/?d=%252e%252e/x.png",
        "/data/local-files/?d=x.png&d=y.png",
        "/data/local-files/?q=x.png",
        "/data/upload/%2e%2e/%2e%2e/etc/passwd",
        "/data/upload/%252e%252e/x.png",
        "/data/upload/1/x.png?d=/etc/passwd",
        "/data/upload/1/./x.png",
        "/data/upload/1/x.png%00.png",
        "/tasks/1/",
        "/tasks/1/resolve/?fileuri=",
        "/storage-data/uploaded/?filepath=/abs/x.png",
        "/api/projects/1/export",
    ],
)
def test_other_label_studio_paths_are_refused_with_one_answer(value):
    with pytest.raises(FetchError) as err:
        check_label_studio_path(value)
    assert err.value.status == 403 and str(err.value) == REFUSED_LS_PATH


def test_refused_paths_never_send_a_request():
    seen = []
    f = fetcher(lambda req: seen.append(req) or httpx.Response(200, content=b"x"))
    for value in (
        "/data/local-files/?d=/etc/passwd",
        f"{LS}/api/projects/",
        "http://u:p@ls.internal:8080/data/upload/1/a.png",
    ):
        with pytest.raises(FetchError, match="refusing image reference"):
            f.fetch(value)
    assert seen == []


def test_redirect_within_label_studio_is_checked_too():
    seen = []

    def handler(req):
        seen.append(str(req.url))
        return httpx.Response(302, headers={"location": "/api/projects/1/export"})

    with pytest.raises(FetchError, match="refusing image reference"):
        fetcher(handler).fetch("/data/upload/1/a.png")
    assert seen == [f"{LS}/data/upload/1/a.png"]


# -- a total deadline per fetch --------------------------------------------------------------------------
class TrickleServer:
    """A loopback HTTP server sending its answer one byte every ``interval`` seconds; counts the bytes sent."""

    def __init__(self, *, headers_too: bool, interval: float = 0.2, body: int = 200):
        head = f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {body}\r\n\r\n".encode()
        self.slow, self.fast = (head + b"x" * body, b"") if headers_too else (b"x" * body, head)
        self.total = len(self.slow)
        self.interval = interval
        self.sent = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.recv(65536)
            try:
                conn.sendall(self.fast)
                for i in range(len(self.slow)):
                    conn.sendall(self.slow[i : i + 1])
                    self.sent += 1
                    time.sleep(self.interval)
            except OSError:
                return  # the client hung up

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("headers_too", [False, True], ids=["slow body", "slow headers"])
def test_a_trickling_server_is_cut_at_the_deadline(headers_too):
    server = TrickleServer(headers_too=headers_too)
    try:
        f = ImageFetcher(allowed_hosts=("127.0.0.1",), timeout=1.0)
        with pytest.raises(FetchError) as err:
            f.fetch(f"http://127.0.0.1:{server.port}/slow.png")
        f.close()
    finally:
        server.close()
    assert err.value.status == 504 and "did not arrive within FETCH_TIMEOUT=1 s" in str(err.value)
    # every read returned within the per-read timeout: only the total deadline ended it, long before the end
    assert server.sent < server.total // 2
