"""A `drop` whose deletion cannot be stored (another process holds the
store's write lock past the busy timeout) is refused, and leaves the record
as it was (docs/config.md: a drop is answered once the row is deleted).
Before, the record left memory (and its key the stored keys' hashes)
anyway: `dead`, read from the store, still listed the dead letter, while
`wait`, `replay` and `drop` said "no such task" until agentsupd restarted;
and a dead letter whose end was not stored yet was then never written, so
the next start ran it again (found in an audit)."""
import json

from conftest import store_locked
from test_dynamic import pool
from test_ledger_store import restart, settings, stored_states


def files(supd, go=None):
    wait = f"while [ ! -e {go} ]; do sleep 0.05; done; " if go else ""
    return {"00-settings.yaml": settings(supd),
            "a.yaml": pool(template=f"""\
                template:
                  command: ["/bin/sh", "-c", "{wait}exit 3", "task"]
                  restart: temporary
                  backoff: none
                """)}


def locked(supd):
    return store_locked(supd.tmp / "state" / "agentsup.db")


def dead(d, name):
    """The record of a dead letter (`wait` exits 2)."""
    rec = json.loads(d.ctl("--json", "wait", name, check=2).stdout)
    assert rec["state"] == "dead", rec
    return rec


def refused_drop(d, name):
    r = d.ctl("drop", name)
    assert r.returncode == 1 and "the drop could not be stored" in r.stderr, r


def test_a_drop_that_cannot_be_stored_leaves_the_record(supd):
    d = supd.start(files(supd))
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "p", check=0)
    before = dead(d, "pool/p")
    assert stored_states(supd)["p"] == 3
    with locked(supd):
        refused_drop(d, "pool/p")
    assert dead(d, "pool/p") == before  # it said "no such task"
    assert "pool/p" in d.ctl("dead", check=0).stdout
    assert d.ctl_json("replay", "pool/p")["created"] is True
    dead(d, "pool/p")
    d.ctl("drop", "pool/p", check=0)
    r = d.ctl("wait", "pool/p", "--timeout", "5s")  # answered at once
    assert r.returncode == 1 and "no such task" in r.stderr, r
    assert "p" not in stored_states(supd)


def test_a_refused_drop_of_an_end_not_stored_yet_keeps_that_end(supd):
    """The task dies while the store cannot write (its end's write failed:
    memory holds the only copy of it), and a drop of it is refused: the
    end is still written once the store works, and the next start does not
    run the dead letter again."""
    go = supd.tmp / "go"
    d = supd.start(files(supd, go))
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "p", check=0)
    d.wait("started", "root/pool/p")
    with locked(supd):
        go.write_text("")
        d.wait("dead_lettered", "root/pool/p")
        d.wait_detail("store_error", "task pool/p")
        refused_drop(d, "pool/p")
    dead(d, "pool/p")  # once its end is written again
    assert stored_states(supd)["p"] == 3
    d.kill()
    d = restart(supd, 1)
    d.wait("started", "root/idle")
    dead(d, "pool/p")
    assert d.count("started", "root/pool/p") == 0, "the dead letter ran again"


def test_a_drop_under_way_is_not_listed(supd):
    """While a drop waits for its deletion to be stored, `wait` says "no
    such task" but `tasks` and `dead` listed the stored row: the two
    disagreed about the same key. Neither lists it now; the drop refused,
    both list it again."""
    import subprocess
    from conftest import AGENTSUPCTL, TIMEOUT, wait_until
    d = supd.start(files(supd))
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "p", check=0)
    dead(d, "pool/p")
    with locked(supd):
        drop = subprocess.Popen([AGENTSUPCTL, "--socket", d.socket, "drop",
                                 "pool/p"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        wait_until(lambda: d.ctl("wait", "pool/p", "--timeout", "0")
                   .returncode == 1, what="the drop under way")
        assert d.ctl_json("tasks") == []
        assert d.ctl_json("dead") == []
        _, err = drop.communicate(timeout=TIMEOUT)
    assert drop.returncode == 1 and "the drop could not be stored" in err
    assert [x["name"] for x in d.ctl_json("tasks")] == ["pool/p"]
    assert [x["name"] for x in d.ctl_json("dead")] == ["pool/p"]
