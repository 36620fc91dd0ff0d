"""agentsupd where the kernel or a seccomp profile refuses unshare(2) and
close_range(2) — a default Docker container on a kernel before 5.9. A spawn
shares the daemon's descriptor table only where the child can take its own
copy (probed once at start); elsewhere workers start as before."""
import os

import pytest

from conftest import BUILD, Daemon, sh

NOSHARE = os.path.abspath(os.path.join(BUILD, "noshare"))


@pytest.mark.skipif(not os.path.exists(NOSHARE), reason="noshare not built")
@pytest.mark.parametrize("contain", ["auto", "none"])
def test_workers_start_where_unshare_is_refused(supd, contain):
    supd.write({"00-settings.yaml": f"agentsupd:\n  events_file: {supd.events}\n"
                                    f"  contain: {contain}\n",
                "a.yaml": f"""
supervisor: root
children:
  - {{worker: a, command: {sh("exec sleep 1000")}}}
  - {{worker: b, command: {sh("exec sleep 1000")}}}
"""}, settings=False)
    d = Daemon(supd.dir, supd.events, argv_prefix=(NOSHARE,))
    supd.started.append(d)
    for name in ("a", "b"):
        ev = d.wait("started", f"root/{name}")
        assert os.path.exists(f"/proc/{ev.pid}")
    # running, not failing to set up (exit 126) and restarting
    d.ctl("restart", "a", check=0)
    d.wait("started", "root/a")
    assert not [e for e in d.seen if e.kind == "exited"
                and "setting up" in (e.get("detail") or "")]
    assert d.proc.poll() is None
