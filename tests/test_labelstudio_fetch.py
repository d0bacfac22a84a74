"""Image fetching: Label Studio URLs with the key, SSRF refusals, local roots, size limits."""

import httpx
import pytest

from labelstudio_backend.fetch import FetchError, ImageFetcher, is_public

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
