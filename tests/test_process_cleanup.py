"""Nodes and helpers the tests start are gone when stopped; the session's leak check finds
orphans (the session itself fails when one outlives it, see ``pytest_unconfigure``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from anvil_node import AnvilNode
from leaked_processes import MARKER, kill, processes_with_token, survivors

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")


def test_a_stopped_node_leaves_no_process(monkeypatch):
    token = "anvil-node-" + str(id(monkeypatch))
    monkeypatch.setenv(MARKER, token)
    node = AnvilNode()
    try:
        # one process, the node itself: nothing in between that could be killed instead of it
        assert list(processes_with_token(token)) == [node.proc.pid]
        assert f"--port {node.port}" in processes_with_token(token)[node.proc.pid]
    finally:
        node.stop()
        # this token hides the node from the session's own check: clean up before asserting
        leaked = survivors(token, grace=1)
        kill(list(leaked))
    assert leaked == {}


def test_an_orphan_is_found_by_the_token_it_inherited():
    token = "orphan-" + str(id(sys))
    shell = "sleep 60 >/dev/null 2>&1 & echo $!"
    env = {"PATH": "/usr/bin:/bin", MARKER: token}
    # the shell exits at once: the sleep it started is reparented away from this process
    pid = int(subprocess.run(["sh", "-c", shell], env=env, capture_output=True).stdout)
    try:
        # the child may still be between fork and exec, when its environ reads empty
        deadline = time.monotonic() + 5
        while pid not in processes_with_token(token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid in processes_with_token(token)
        assert processes_with_token("another-" + token) == {}
    finally:
        kill([pid])
    assert survivors(token, grace=2) == {}


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's parent-death signal")
def test_a_node_dies_with_a_killed_test_process(tmp_path):
    """A test process killed outright (a CI timeout) runs no teardown; its nodes go with it."""
    token = "killed-parent-" + str(id(tmp_path))
    script = (
        "import time; from anvil_node import AnvilNode\n"
        "node = AnvilNode(); print('up', flush=True); time.sleep(60)"
    )
    tests = Path(__file__).resolve().parent
    env = {**os.environ, MARKER: token, "PYTHONPATH": f"{tests}{os.pathsep}{tests.parent}"}
    parent = subprocess.Popen([sys.executable, "-c", script], env=env, stdout=subprocess.PIPE)
    try:
        assert parent.stdout.readline() == b"up\n"
        node = [pid for pid, cmd in processes_with_token(token).items() if "--port" in cmd]
        assert len(node) == 1
        parent.kill()
        parent.wait(timeout=10)
        leaked = survivors(token, grace=5)
    finally:
        parent.kill()
        kill(list(processes_with_token(token)))
    assert leaked == {}
