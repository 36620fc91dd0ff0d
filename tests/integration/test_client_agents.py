"""The example agents (tools/agents/) resume from the checkpoint welcome hands
them, declare why they crash, and store a checkpoint after every step: the C
one on libagentsup, the Python one on the agentsup module, each against the
fake agentsupd of test_client_python."""
import json
import os
import sys

import pytest

from test_client_python import Fake

BUILD = os.environ.get("AGENTSUP_BUILD", "build")
SRC = os.environ.get("AGENTSUP_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))


def run_agent(argv, checkpoint):
    f = Fake(argv=argv)
    assert f.expect("hello")["lang"] in ("c", "python")
    f.send({"t": "welcome", "v": 1, "name": "w1", "path": "root/w1", "incarnation": 1,
            "heartbeat_ms": 0, "timeout_ms": 0, "restarts": 1, "last_reason": "exit:1",
            "checkpoint": checkpoint, "checkpoint_seq": 5})
    f.expect("ready")
    return f


def test_c_example_resumes_and_declares():
    agent = os.path.join(BUILD, "example_agent")
    if not os.path.exists(agent):
        pytest.skip("example_agent is not built")
    f = run_agent([agent, "--step-ms", "1", "--crash", "0"], b"41 4100")
    hb = f.expect("hb")
    assert hb["progress"]["steps"] == 42 and hb["progress"]["tokens"] > 4100
    ck = f.expect("checkpoint")
    assert ck["seq"] == 6  # numbering goes on from the restored one
    assert ck["data"].startswith(b"42 ")
    f.send({"t": "drain", "deadline_ms": 1000})
    while f.frame() is not None:  # the rest of its beats, then EOF
        pass
    f.finish()


def test_c_example_declares_a_crash():
    agent = os.path.join(BUILD, "example_agent")
    if not os.path.exists(agent):
        pytest.skip("example_agent is not built")
    f = run_agent([agent, "--step-ms", "1", "--crash", "1"], b"0 0")
    ex = f.expect("exit")
    assert ex["reason"] == "transient" and ex["detail"] == "simulated crash"
    f.proc.wait(timeout=20)
    assert f.proc.returncode == 1


def test_python_demo_resumes():
    demo = os.path.join(SRC, "tools", "agents", "demo_agent.py")
    saved = json.dumps({"steps": 9, "tokens": 900}).encode()
    f = run_agent([sys.executable, demo, "--step", "0.001", "--warmup", "0"], saved)
    hb = f.expect("hb")
    assert hb["progress"]["steps"] == 10 and hb["progress"]["tokens"] > 900
    ck = f.expect("checkpoint")
    assert ck["seq"] == 6 and json.loads(ck["data"])["steps"] == 10
    f.send({"t": "drain", "deadline_ms": 1000})
    while f.frame() is not None:
        pass
    f.finish()
