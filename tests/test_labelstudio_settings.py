"""``BackendSettings`` from the environment: parsing, validation, secrets kept out of repr."""

from pathlib import Path

import pytest

from labelstudio_backend.settings import BackendSettings


def test_from_env_parses_every_kind():
    s = BackendSettings.from_env(
        {
            "LABEL_STUDIO_URL": "http://ls:8080/",
            "LABEL_STUDIO_API_KEY": "secret-1",
            "MODEL_DIR": "/tmp/m",
            "ALLOWED_HOSTS": "img.example.com, *.cdn.example.com",
            "LOCAL_ROOTS": "/data/a:/data/b",
            "MAX_IMAGE_BYTES": "1000",
            "TRAIN_EVERY": "5",
            "PRETRAINED": "false",
            "PSEUDO_MIN_SCORE": "0.4",
            "BASIC_AUTH_USER": "u",
            "BASIC_AUTH_PASS": "secret-2",
            "LABEL_KEYS": "category",
            "ALLOW_UNAUTHENTICATED": "true",
            "MAX_BODY_BYTES": "2048",
            "MAX_CACHED_IMAGES": "10",
            "MAX_CACHED_IMAGE_BYTES": "4096",
            "PREDICT_CONCURRENCY": "2",
            "FETCH_TIMEOUT": "2.5",
        }
    )
    assert s.allow_unauthenticated is True and s.fetch_timeout == 2.5
    assert (s.max_body_bytes, s.max_cached_images, s.max_cached_image_bytes, s.predict_concurrency) == (
        2048,
        10,
        4096,
        2,
    )
    assert s.label_studio_url == "http://ls:8080" and s.model_dir == Path("/tmp/m")
    assert s.allowed_hosts == ("img.example.com", "*.cdn.example.com")
    assert s.local_roots == (Path("/data/a"), Path("/data/b"))
    assert (s.max_image_bytes, s.train_every, s.pretrained, s.pseudo_min_score) == (1000, 5, False, 0.4)
    assert s.basic_auth == ("u", "secret-2") and s.label_keys == ("category",)
    assert "secret-1" not in repr(s) and "secret-2" not in repr(s)


@pytest.mark.parametrize(
    "env, match",
    [
        ({"LABEL_STUDIO_URL": "ls:8080"}, "http"),
        ({"MAX_IMAGE_BYTES": "lots"}, "MAX_IMAGE_BYTES='lots'"),
        ({"BASIC_AUTH_USER": "u"}, "both BASIC_AUTH_USER and BASIC_AUTH_PASS"),
        ({"PRETRAINED": "maybe"}, "true/false"),
        ({"TRAIN_EVERY": "-1"}, "TRAIN_EVERY"),
        ({"ALLOW_UNAUTHENTICATED": "sure"}, "ALLOW_UNAUTHENTICATED='sure'"),
        ({"MAX_BODY_BYTES": "0"}, "max_body_bytes must be >= 1"),
        ({"MAX_CACHED_IMAGES": "0"}, "max_cached_images must be >= 1"),
        ({"FETCH_TIMEOUT": "0"}, "FETCH_TIMEOUT must be > 0"),
    ],
)
def test_bad_values_are_named(env, match):
    with pytest.raises(ValueError, match=match):
        BackendSettings.from_env(env)


def test_closed_and_bounded_by_default():
    s = BackendSettings()
    assert s.basic_auth is None and s.allow_unauthenticated is False
    assert s.max_body_bytes == 32 * 1024 * 1024 and s.max_cached_images >= 1 and s.max_cached_image_bytes >= 1


def test_unknown_fields_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown backend setting.*known"):
        BackendSettings.from_dict({"modeldir": "/x"})
