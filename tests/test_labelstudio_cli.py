"""``gfn-autolabel serve-labelstudio``: options, and settings errors as one clear line."""

import logging
import os

import pytest

from core.cli import build_parser, main
from labelstudio_backend.auth import check_listen_address
from labelstudio_backend.cli import default_threads
from labelstudio_backend.settings import BackendSettings


def test_options_parse():
    args = build_parser(["serve-labelstudio"]).parse_args(
        ["serve-labelstudio", "--port", "9191", "--workers", "3", "--threads", "4", "--server", "uvicorn"]
    )
    assert (args.port, args.workers, args.threads, args.server) == (9191, 3, 4, "uvicorn")
    assert args.host == "127.0.0.1"


def test_bad_settings_fail_before_serving(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("LABEL_STUDIO_URL", "ls.example.com:8080")
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("LOG_LEVEL", "info")  # run() exports its options for the workers
    assert main(["serve-labelstudio", "--port", "0"]) == 2
    assert "LABEL_STUDIO_URL='ls.example.com:8080'" in capsys.readouterr().err


def test_workers_must_be_positive(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("LOG_LEVEL", "info")  # run() exports its options for the workers
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    assert main(["serve-labelstudio", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_model_threads_default_to_the_cores_shared_among_the_workers(monkeypatch, tmp_path):
    cores = len(os.sched_getaffinity(0))
    assert default_threads(1) == cores and default_threads(cores) == 1 and default_threads(4 * cores) == 1
    assert default_threads(2) == max(1, cores // 2)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("LOG_LEVEL", "info")
    monkeypatch.setenv("TORCH_THREADS", "")  # unset (restored after the test)
    for var in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS", "ALLOW_UNAUTHENTICATED", "LABEL_STUDIO_URL"):
        monkeypatch.delenv(var, raising=False)
    # refused after the settings are read (a public address without auth): nothing is served
    assert main(["serve-labelstudio", "--host", "0.0.0.0", "--port", "0", "--workers", "2"]) == 2
    assert os.environ["TORCH_THREADS"] == str(max(1, cores // 2))
    monkeypatch.setenv("TORCH_THREADS", "3")  # a value set by the user is kept
    assert main(["serve-labelstudio", "--host", "0.0.0.0", "--port", "0", "--workers", "2"]) == 2
    assert os.environ["TORCH_THREADS"] == "3"


def test_a_public_address_without_credentials_is_refused(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("LOG_LEVEL", "info")
    for var in ("BASIC_AUTH_USER", "BASIC_AUTH_PASS", "ALLOW_UNAUTHENTICATED", "LABEL_STUDIO_URL"):
        monkeypatch.delenv(var, raising=False)
    assert main(["serve-labelstudio", "--host", "0.0.0.0", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "refusing to listen on '0.0.0.0' without authentication" in err and "--allow-unauthenticated" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2", "[::1]"])
def test_loopback_needs_no_credentials(host):
    check_listen_address(host, BackendSettings())


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "gfn-backend", "192.168.1.2"])
def test_other_addresses_need_credentials_or_the_explicit_override(host, caplog):
    with pytest.raises(ValueError, match="BASIC_AUTH_USER and BASIC_AUTH_PASS"):
        check_listen_address(host, BackendSettings())
    check_listen_address(host, BackendSettings(basic_auth_user="u", basic_auth_pass="p"))
    assert not caplog.records
    with caplog.at_level(logging.WARNING):
        check_listen_address(host, BackendSettings(allow_unauthenticated=True))
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "WITHOUT authentication" in caplog.text


def test_allow_unauthenticated_flag_reaches_the_settings(monkeypatch):
    args = build_parser(["serve-labelstudio"]).parse_args(["serve-labelstudio", "--allow-unauthenticated"])
    assert args.allow_unauthenticated is True
    monkeypatch.setenv("ALLOW_UNAUTHENTICATED", "yes")
    assert BackendSettings.from_env().allow_unauthenticated is True
