"""A live task's record knows its child (tasks.c: no scan of the pool's
children per spawn or answer) only until a reload: a reload that removes
the pool frees the children of live records, which then answer from the
record, and the same keys spawned into the pool put back start new
children, idempotent again. Run under ASan, a stale pointer would be a
use after free. Waits are on events and answers with deadlines."""
import json
import textwrap

from test_dynamic import pool

SLEEPER = """\
    template:
      command: [sleep, '300']
      backoff: none
    """


def test_a_reload_removing_the_pool_leaves_no_stale_child(supd):
    d = supd.start({"a.yaml": pool(template=SLEEPER)})
    d.wait("started", "root/idle")
    for k in ("a", "b"):
        rec = json.loads(d.ctl("--json", "spawn", "pool", "--key", k,
                               check=0).stdout)
        assert rec["created"] is True, rec
        d.wait("started", f"root/pool/{k}")
    again = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a",
                             check=0).stdout)
    assert again["created"] is False and again["state"] == "running", again
    (supd.dir / "a.yaml").write_text(textwrap.dedent("""\
        supervisor: root
        children:
          - {worker: idle, command: [sleep, '300']}
        """))
    d.ctl("reload", check=0)
    d.wait_count("exited", 1, "root/pool/a")  # in either order
    d.wait_count("exited", 1, "root/pool/b")
    # a later pump frees the removed nodes; a request answered after it
    assert d.ctl("status", check=0).returncode == 0
    # its task was cancelled with its pool (test_dynamic.py)
    assert d.ctl("wait", "a", "--timeout", "5").returncode == 4
    supd.write({"a.yaml": pool(template=SLEEPER)})
    d.ctl("reload", check=0)  # answered once applied: the pool runs
    rec = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a",
                           check=0).stdout)
    assert rec["created"] is False and rec["state"] == "cancelled", rec
    rec = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a",
                           "--retry", check=0).stdout)
    assert rec["created"] is True, rec  # the old child is gone
    d.wait("started", "root/pool/a")
    again = json.loads(d.ctl("--json", "spawn", "pool", "--key", "a",
                             check=0).stdout)
    assert again["created"] is False and again["state"] == "running", again
