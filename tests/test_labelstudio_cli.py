"""``gfn-autolabel serve-labelstudio``: options, and settings errors as one clear line."""

from core.cli import build_parser, main


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
