"""libagentsup as a C developer meets it: a task's result over 64 KiB is
refused by the library (agentsupd would stop the task for it), the
installed agentsup.pc describes the prefix it was installed to (and with
msgpack's builds a wire.h program, as wire.h says), the install stays
inside its prefix, and the shared library exports only agentsup_* symbols
(an agent's own agent_send took the library's calls over). Found by a C
developer's trial. Waits are on events; no sleeps."""
import os
import subprocess

import pytest

from conftest import BUILD, SRC

TASK_C = r"""
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <agentsup/agent.h>

int
main(void)
{
	struct agentsup *a = agentsup_open("c");
	size_t n = (64u << 10) + 1; /* one byte over what agentsupd takes */
	char *big = malloc(n);
	int sent;

	if (big == NULL || agentsup_await_welcome(a, 5000) < 0)
		return 2;
	memset(big, 'r', n);
	sent = agentsup_result(a, big, n);
	free(big);
	if (sent == 0) {
		agentsup_flush(a, 1000);
		agentsup_close(a);
		return 0; /* sent: agentsupd stops the task for it */
	}
	if (errno != EMSGSIZE)
		return 4;
	agentsup_result(a, "short", 5); /* refused here: a smaller one */
	agentsup_exit_reason(a, AGENTSUP_DECLARED_DONE, 0, NULL);
	agentsup_flush(a, 1000);
	agentsup_close(a);
	return 0;
}
"""


def run(*argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, check=True, **kw)


def sanitizers():
    """The build's own sanitizers (tools/test's ASan+UBSan build): a
    program linked with its library is built with them too."""
    so = os.path.join(os.path.abspath(BUILD), "libagentsup.so")
    return ["-fsanitize=address,undefined"] \
        if "libasan" in run("readelf", "-d", so).stdout else []


@pytest.fixture(scope="module")
def big_result_task(tmp_path_factory):
    out = tmp_path_factory.mktemp("capi")
    src = out / "task.c"
    src.write_text(TASK_C)
    exe = out / "task"
    run("cc", *sanitizers(), "-std=c11", "-Wall", "-Werror", str(src), "-o", str(exe),
        f"-I{os.path.join(SRC, 'include')}",
        os.path.join(os.path.abspath(BUILD), "libagentsup.a"), "-lmsgpackc")
    return exe


def test_result_over_64k_is_refused_by_the_library(supd, big_result_task):
    """agent.h: a task's result is at most 64 KiB. Once welcome has raised
    max_frame (checkpoint.max 256 KiB by default) a larger one was sent,
    and agentsupd stopped the task: protocol_error, dead-lettered. The
    library must refuse it (EMSGSIZE) as Python's result() does."""
    d = supd.start({"a.yaml": f"""\
        supervisor: root
        children:
          - worker: idle
            command: [/bin/sleep, "1000"]
        ---
        supervisor: pool
        parent: root
        template:
          command: [{big_result_task}]
        """})
    d.wait("started", "root/idle")
    d.ctl("spawn", "pool", "--key", "big", check=0)
    ev = d.wait("exited", "root/pool/big")
    assert d.count("protocol_error", "root/pool/big") == 0, ev
    d.wait("task_done", "root/pool/big")


def install_to(tmp_path, prefix):
    stage = tmp_path / "stage"
    run("cmake", "--install", os.path.abspath(BUILD), "--prefix", prefix,
        env=dict(os.environ, DESTDIR=str(stage)))
    return stage


def test_pc_file_follows_the_install_prefix(tmp_path):
    """`cmake --install build --prefix P` puts the library in P/lib but the
    .pc said prefix=/usr/local (the configure-time prefix): pkg-config then
    gave -I/usr/local/include and a worker did not compile. It finds its
    prefix from where it lies (staged under DESTDIR here, as a package's
    files are)."""
    prefix = "/opt/agentsup-capi-test"
    stage = install_to(tmp_path, prefix)
    pcdir = next((stage / prefix.lstrip("/")).rglob("agentsup.pc")).parent
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcdir))
    for var, want in (("includedir", "include"), ("libdir", "lib")):
        got = run("pkg-config", f"--variable={var}", "agentsup",
                  env=env).stdout.strip()
        assert os.path.realpath(got) == os.path.realpath(
            pcdir.parent if var == "libdir" else
            stage / prefix.lstrip("/") / want), (var, got)
    assert (pcdir.parent / "libagentsup.so").exists()


def test_install_stays_inside_its_prefix(tmp_path):
    """Nothing is installed outside --prefix (supervisor.d went to the
    configure-time /usr/local/etc)."""
    prefix = "/opt/agentsup-capi-test"
    stage = install_to(tmp_path, prefix)
    assert sorted(os.listdir(stage)) == ["opt"], os.listdir(stage)


WIRE_C = r"""
#include <stdio.h>
#include <agentsup/wire.h>

static int
on(void *arg, const struct agentsup_frame *f)
{
	(void)arg;
	printf("%.*s\n", (int)f->type_len, f->type);
	return 0;
}

int
main(void)
{
	msgpack_zone z;
	struct agentsup_reader r;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	msgpack_zone_init(&z, 1024);
	agentsup_reader_init(&r);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	agentsup_wire_begin(&sb);
	msgpack_pack_map(&pk, 1);
	agentsup_wire_kv_str(&pk, "t", "hb");
	agentsup_wire_end(&sb, 65536);
	rc = agentsup_reader_feed(&r, (const uint8_t *)sb.data, sb.size, 65536,
	                          &z, on, NULL);
	msgpack_sbuffer_destroy(&sb);
	agentsup_reader_free(&r);
	msgpack_zone_destroy(&z);
	return rc;
}
"""


def test_a_wire_program_builds_as_wire_h_says(tmp_path):
    """wire.h speaks in msgpack-c's types: a program that uses it builds
    with `pkg-config --cflags --libs agentsup msgpack`, against the .pc of
    an install moved by --prefix, linked with the shared library."""
    prefix = "/opt/agentsup-capi-test"
    stage = install_to(tmp_path, prefix)
    pcdir = next((stage / prefix.lstrip("/")).rglob("agentsup.pc")).parent
    env = dict(os.environ, PKG_CONFIG_PATH=str(pcdir))
    flags = run("pkg-config", "--cflags", "--libs", "agentsup", "msgpack",
                env=env).stdout.split()
    src, exe = tmp_path / "wire.c", tmp_path / "wire"
    src.write_text(WIRE_C)
    run("cc", *sanitizers(), "-std=c11", "-Wall", "-Werror", str(src), "-o", str(exe),
        *flags, f"-Wl,-rpath,{pcdir.parent}")
    assert run(str(exe)).stdout == "hb\n"


def test_shared_library_exports_only_its_prefix():
    """Every defined dynamic symbol of libagentsup.so starts with
    agentsup_ (agent_send, agent_hello, agent_on_frame and
    agent_flush_now, private to src/lib, were exported)."""
    so = os.path.join(os.path.abspath(BUILD), "libagentsup.so")
    out = run("nm", "-D", "--defined-only", so).stdout.split("\n")
    names = [ln.split()[-1] for ln in out if ln.strip()]
    assert names and all(n.startswith("agentsup_") for n in names), \
        [n for n in names if not n.startswith("agentsup_")]


OWN_AGENT_SEND_C = r"""
#include <agentsup/agent.h>

/* the agent's own function, named as an agent's code names things */
int
agent_send(const char *msg)
{
	(void)msg;
	return 0;
}

int
main(void)
{
	struct agentsup *a = agentsup_open("c");

	agentsup_ready(a);
	while (!agentsup_draining(a, NULL))
		if (agentsup_wait(a, 200) < 0 || agentsup_beat(a, NULL, "up") < 0)
			return 3;
	agentsup_close(a);
	return 0;
}
"""


def test_an_agent_s_own_agent_send_does_not_hijack_the_library(supd, tmp_path):
    """libagentsup.so exports its private agent_send(): an agent program
    with a function of that name, linked with the shared library, gets
    every hello, ready and beat of the library sent to its own function
    (symbol interposition), every call returns 0, and agentsupd hears
    nothing: the worker fails start_timeout. (Linked statically, the same
    program does not link: "multiple definition of `agent_send'".)"""
    src = tmp_path / "own.c"
    src.write_text(OWN_AGENT_SEND_C)
    exe = tmp_path / "own"
    build = os.path.abspath(BUILD)
    run("cc", *sanitizers(), "-std=c11", "-Wall", "-Werror", str(src), "-o", str(exe),
        f"-I{os.path.join(SRC, 'include')}", f"-L{build}", "-lagentsup",
        f"-Wl,-rpath,{build}")
    d = supd.start({"a.yaml": f"""\
        supervisor: root
        children:
          - worker: own
            command: [{exe}]
            start_timeout: 2s
            heartbeat: 1s
        """})
    d.wait("started", "root/own")
    d.wait("ready", "root/own")  # it was start_timeout instead
