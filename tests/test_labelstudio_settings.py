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
        ({"POSTPROCESS": "crf+sharpen"}, r"POSTPROCESS='crf\+sharpen': unknown step\(s\) \['sharpen'\]"),
        ({"POSTPROCESS_MAX_SIDE": "8"}, "POSTPROCESS_MAX_SIDE must be >= 16"),
        ({"POSTPROCESS_MAX_SIDE": "big"}, "POSTPROCESS_MAX_SIDE='big': expected an integer"),
        ({"TORCH_THREADS": "0"}, "TORCH_THREADS must be >= 1"),
        ({"GRABCUT_ITERS": "0"}, "GRABCUT_ITERS must be >= 1"),
        ({"TRAIN_RECIPE": "adam"}, r"TRAIN_RECIPE='adam': expected one of \['default', 'sgd'\]"),
    ],
)
def test_bad_values_are_named(env, match):
    with pytest.raises(ValueError, match=match):
        BackendSettings.from_env(env)


def test_postprocessing_overrides_parse_and_default_to_the_checkpoint():
    s = BackendSettings.from_env(
        {"POSTPROCESS": "grabcut", "POSTPROCESS_MAX_SIDE": "256", "GRABCUT_ITERS": "2", "TORCH_THREADS": "1"}
    )
    assert (s.postprocess, s.postprocess_max_side, s.grabcut_iters, s.torch_threads) == ("grabcut", 256, 2, 1)
    assert BackendSettings.from_env({"POSTPROCESS": "crf+grabcut"}).postprocess == "crf+grabcut"
    default = BackendSettings.from_env({})
    assert (default.postprocess, default.postprocess_max_side, default.grabcut_iters) == (None, None, None)


def test_train_recipe_default_is_the_engines_and_sgd_is_paper_001s():
    from core.refine.config import RunConfig
    from core.refine.config_keys import LEGACY_ROUND_RECIPE
    from labelstudio_backend.engine import Engine

    default = Engine(BackendSettings.from_env({})).run_config().settings()
    sgd = Engine(BackendSettings.from_env({"TRAIN_RECIPE": "sgd"})).run_config().settings()
    engine = RunConfig().settings()
    assert all(default[k] == engine[k] for k in LEGACY_ROUND_RECIPE) and default["train.optimizer"] == "adamw"
    assert all(sgd[k] == v for k, v in LEGACY_ROUND_RECIPE.items())
    differ = {k for k in default if default[k] != sgd[k]}  # only the recipe (some of its values coincide)
    assert "train.optimizer" in differ and differ <= set(LEGACY_ROUND_RECIPE)


def test_closed_and_bounded_by_default():
    s = BackendSettings()
    assert s.basic_auth is None and s.allow_unauthenticated is False
    assert s.max_body_bytes == 32 * 1024 * 1024 and s.max_cached_images >= 1 and s.max_cached_image_bytes >= 1


def test_unknown_fields_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="unknown backend setting.*known"):
        BackendSettings.from_dict({"modeldir": "/x"})
