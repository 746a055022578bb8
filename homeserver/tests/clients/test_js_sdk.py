"""matrix-js-sdk with its Rust crypto (what Element Web and Hearth's web client use) against the
running `hearth` binary: js/e2ee.mjs holds an encrypted DM, bootstraps cross-signing, makes a key
backup and restores it on a second device; js/dehydration.mjs leaves a dehydrated device that
receives a room key while the user is logged out, and rehydrates it on the next login. scripts/test installs the pinned SDK with `npm ci`;
without Node or the packages this skips with the reason (and fails under CI)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parent / "js"
REQUIRE_NODE = os.environ.get("HEARTH_TEST_REQUIRE_NODE") == "1"


def _node():
    node = shutil.which("node")
    reason = None
    if node is None:
        reason = "node is not installed"
    elif not (JS / "node_modules" / "matrix-js-sdk").exists():
        reason = "matrix-js-sdk is not installed (scripts/test runs npm ci in homeserver/tests/clients/js)"
    if reason:
        if REQUIRE_NODE:
            pytest.fail(f"matrix-js-sdk tests are required (HEARTH_TEST_REQUIRE_NODE=1) but {reason}")
        pytest.skip(f"matrix-js-sdk tests skipped: {reason}")
    return node


def run_scenario(server, script):
    node = _node()
    result = subprocess.run([node, script, server.base_url], cwd=JS, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}\nserver log:\n{server.log_text()[-4000:]}"
    assert "OK:" in result.stdout


def test_matrix_js_sdk_encrypts_cross_signs_and_restores_a_backup(server):
    run_scenario(server, "e2ee.mjs")


def test_matrix_js_sdk_rehydrates_a_dehydrated_device(server):
    run_scenario(server, "dehydration.mjs")
