"""Shared test set-up: the repository root on sys.path, CPU-only, quiet threads, and each test's kind.

Every test is exactly one of three kinds, by module (``KIND_OF_MODULE`` below; a new test module
must be added there, or collection fails naming it):

- ``unit``: one module or function of ``core`` or an adapter, in process, on tiny inputs
  (``pytest -m unit``: the fast loop, well under a minute);
- ``integration``: the engine, the CLI, FiftyOne (its bundled database), the backend app in process;
- ``e2e``: real servers end to end (Label Studio and the backend under gunicorn).
"""

import atexit
import os
import pathlib
import shutil
import sys
import tempfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")


def _isolate_fiftyone() -> pathlib.Path:
    """Point FiftyOne at a temporary database, plugins folder (this plugin linked in), dataset folder
    and runs folder, once for the session and before any test module imports fiftyone, so that the
    user's own datasets are never touched and every FiftyOne test module runs in the same session."""
    if "fiftyone" in sys.modules:
        raise RuntimeError("fiftyone was imported before tests/conftest.py could isolate its database")
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="gfn_fiftyone_tests_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    (tmp / "plugins").mkdir()
    (tmp / "plugins" / "gfn_fiftyone").symlink_to(ROOT / "gfn_fiftyone", target_is_directory=True)
    os.environ.update(
        {
            "FIFTYONE_DATABASE_DIR": str(tmp / "db"),
            "FIFTYONE_PLUGINS_DIR": str(tmp / "plugins"),
            "FIFTYONE_DEFAULT_DATASET_DIR": str(tmp / "datasets"),
            "FIFTYONE_DO_NOT_TRACK": "true",
            "FIFTYONE_DATABASE_VALIDATION": "false",
            "GFN_FIFTYONE_RUNS_DIR": str(tmp / "runs"),
            "GFN_FIFTYONE_TESTS_TMP": str(tmp),
        }
    )
    return tmp


FIFTYONE_TMP = _isolate_fiftyone()
# exported ONNX graphs (core.inference.cache) go to this session's folder, never the user's cache
os.environ["GFN_AUTOLABEL_ONNX_CACHE"] = str(FIFTYONE_TMP / "onnx_cache")

KINDS = ("unit", "integration", "e2e")

_UNIT = """
    test_cli_progress test_example test_fiftyone_naming test_formats_coco test_formats_png test_formats_voc
    test_guided_filter test_images_io test_initial_grabcut test_initial_otsu test_initial_registry
    test_labelstudio_brush test_labelstudio_cli test_labelstudio_config test_labelstudio_fetch
    test_labelstudio_polygon test_labelstudio_prompts test_labelstudio_settings test_metrics test_network
    test_labelstudio_store
    test_postprocess test_readers test_refine_config test_refine_filters test_refine_stopping
    test_inference_pipeline test_memory
"""
_INTEGRATION = """
    test_inference test_inference_cache
    test_refine_fixed test_fiftyone_review
    test_bad_inputs test_formats_fiftyone test_cli_convert_evaluate test_cli_run test_cli_train_predict test_distributed
    test_fiftyone_plugin
    test_fiftyone_progress test_initial_routes test_labelstudio_app_parts test_labelstudio_routes test_layers
    test_labelstudio_bad_inputs test_labelstudio_serving
    test_refine_collapse test_refine_runner test_round_model test_training test_training_recipe
    test_initial_workers
    test_large_pictures
"""
_E2E = """
    test_fiftyone_browser
    test_review_e2e
    test_labelstudio_e2e
"""
KIND_OF_MODULE: dict[str, str] = {
    name: kind
    for kind, names in (("unit", _UNIT), ("integration", _INTEGRATION), ("e2e", _E2E))
    for name in names.split()
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every collected test is checked, whatever is selected
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its module's kind; fail the run if a test ends up with none or several."""
    for item in items:
        kind = KIND_OF_MODULE.get(item.path.stem)
        if kind is not None:
            item.add_marker(kind)
    wrong = []
    for item in items:
        kinds = sorted({m.name for m in item.iter_markers() if m.name in KINDS})
        if len(kinds) != 1:
            wrong.append(f"  {item.nodeid}: {kinds or 'no kind'}")
    if wrong:
        raise pytest.UsageError(
            f"{len(wrong)} test(s) need exactly one of the markers {list(KINDS)} "
            f"(add the module to KIND_OF_MODULE in tests/conftest.py):\n" + "\n".join(wrong[:20])
        )
