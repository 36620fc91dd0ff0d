# tools/lib/setup.sh - shared by tools/demo and tools/test: make sure the
# Debian packages we build and test with are installed, then build.
# Sourced, not run. Works on a fresh Debian 12 as root (or with sudo).

AGENTSUP_PACKAGES="build-essential cmake pkg-config libev-dev libmsgpack-dev
libyaml-dev libcmocka-dev python3 python3-msgpack python3-pytest clang
libclang-rt-14-dev procps util-linux systemd python3-sdnotify python3-systemd
mypy prometheus libncurses-dev tmux libsqlite3-dev strace
python3-pyflakes python3-pytest-xdist"

# (strace: a test holds agentsupd inside one system call; pytest-xdist runs
# the integration tests' files side by side: most of their time is waiting.)
# Packaging and deploy/: man pages (scdoc), the .deb (dpkg-dev, file), the
# Python client's offline install, the manifests' checks (python3-yaml).
AGENTSUP_PACKAGES="$AGENTSUP_PACKAGES scdoc dpkg-dev file man-db python3-yaml
python3-venv python3-pip python3-setuptools python3-wheel"
# agentsup-guard, static and small (CMakeLists.txt; glibc static without).
AGENTSUP_PACKAGES="$AGENTSUP_PACKAGES musl-tools"

agentsup_missing_packages() {
	local p missing=""
	for p in $AGENTSUP_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
			grep -q "install ok installed" || missing="$missing $p"
	done
	echo "$missing"
}

agentsup_install_deps() {
	local missing sudo=""
	missing=$(agentsup_missing_packages)
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		command -v sudo >/dev/null || {
			echo "agentsup: need root (or sudo) to install:$missing" >&2
			return 1
		}
		sudo="sudo"
	fi
	echo "agentsup: installing Debian packages:$missing" >&2
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
	# shellcheck disable=SC2086
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends $missing
}

# agentsup_build DIR [cmake options...]: configure once, build every time.
agentsup_build() {
	local dir=$1
	shift
	cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
	cmake --build "$dir" -j"$(nproc)"
}
