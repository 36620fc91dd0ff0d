# cmake/Packaging.cmake - what `cmake --install` and the Debian package hold
# beyond the binaries and libagentsup: man pages (written in scdoc), bash
# completion, the Python client, the systemd unit, and the CPack DEB settings.
# tools/package builds the .deb: configure with -DCMAKE_INSTALL_PREFIX=/usr.

include(GNUInstallDirs)

# --- man pages: man/*.scd -> NAME.SECTION.gz (scdoc, then gzip -9n as
# Debian policy wants them: no name, no timestamp, so builds are reproducible)
find_program(SCDOC_EXECUTABLE scdoc)
find_program(GZIP_EXECUTABLE gzip)
set(AGENTSUP_MAN_PAGES agentsupd.8 agentsupctl.1 agentsup.yaml.5)
if(SCDOC_EXECUTABLE AND GZIP_EXECUTABLE)
  set(agentsup_man_outputs "")
  foreach(page ${AGENTSUP_MAN_PAGES})
    string(REGEX REPLACE "^.*\\.([0-9])$" "\\1" section ${page})
    set(src ${CMAKE_SOURCE_DIR}/man/${page}.scd)
    set(out ${CMAKE_BINARY_DIR}/man/${page})
    add_custom_command(OUTPUT ${out}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND sh -c "\"$0\" < \"$1\" > \"$2\"" ${SCDOC_EXECUTABLE} ${src} ${out}
      COMMAND ${GZIP_EXECUTABLE} -9nf ${out}
      DEPENDS ${src}
      COMMENT "scdoc ${page}"
      VERBATIM)
    list(APPEND agentsup_man_outputs ${out}.gz)
    install(FILES ${out}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${agentsup_man_outputs})
else()
  message(WARNING "scdoc or gzip not found: no man pages (apt-get install scdoc)")
endif()

# --- every public header: include/agentsup/ holds only what workers and
# third-party clients may use (DESIGN §2), so all of it is installed, also
# headers added after the explicit list in CMakeLists.txt.
install(DIRECTORY include/agentsup/ DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/agentsup
  FILES_MATCHING PATTERN "*.h")

# --- bash completion, where bash-completion looks for it on demand
install(FILES contrib/bash-completion/agentsupctl
  DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions)

# --- the Python client, beside Debian's own python3-* modules (for /usr), or
# where Debian's python3 looks under another prefix such as /usr/local. Only
# the package's sources and its type marker: no caches, no build leftovers;
# and a dist-info, so that pip and importlib.metadata know it is installed.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(agentsup_python_dir lib/python3/dist-packages)
else()
  execute_process(COMMAND /usr/bin/python3 -c
    "import sys; print('python%d.%d' % sys.version_info[:2])"
    OUTPUT_VARIABLE agentsup_python OUTPUT_STRIP_TRAILING_WHITESPACE
    RESULT_VARIABLE agentsup_python_rc ERROR_QUIET)
  if(NOT agentsup_python_rc EQUAL 0)
    set(agentsup_python python3)
  endif()
  set(agentsup_python_dir lib/${agentsup_python}/dist-packages)
endif()
set(AGENTSUP_PYTHON_DIR "" CACHE STRING
  "where the Python client goes, relative to the prefix (empty: as above)")
if(AGENTSUP_PYTHON_DIR)
  set(agentsup_python_dir ${AGENTSUP_PYTHON_DIR})
endif()
install(DIRECTORY tools/python/agentsup
  DESTINATION ${agentsup_python_dir}
  FILES_MATCHING PATTERN "*.py" PATTERN "py.typed"
  PATTERN "__pycache__" EXCLUDE)
# The dist-info carries the Python client's own version and summary, read
# from its pyproject.toml (it may move apart from the C project's version).
set(agentsup_pyproject ${CMAKE_SOURCE_DIR}/tools/python/pyproject.toml)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${agentsup_pyproject})
file(READ ${agentsup_pyproject} agentsup_pyproject_text)
string(REGEX MATCH "\nversion = \"([^\"]+)\"" _ "${agentsup_pyproject_text}")
set(agentsup_py_version ${CMAKE_MATCH_1})
string(REGEX MATCH "\ndescription = \"([^\"]+)\"" _ "${agentsup_pyproject_text}")
set(agentsup_py_summary ${CMAKE_MATCH_1})
if(NOT agentsup_py_version)
  message(FATAL_ERROR "no version in ${agentsup_pyproject}")
endif()
set(agentsup_dist_info
  ${CMAKE_BINARY_DIR}/python/agentsup-${agentsup_py_version}.dist-info)
file(REMOVE_RECURSE ${CMAKE_BINARY_DIR}/python)
file(WRITE ${agentsup_dist_info}/METADATA
"Metadata-Version: 2.1
Name: agentsup
Version: ${agentsup_py_version}
Summary: ${agentsup_py_summary}
Requires-Python: >=3.8
Requires-Dist: msgpack>=1.0
")
file(WRITE ${agentsup_dist_info}/top_level.txt "agentsup\n")
install(DIRECTORY ${agentsup_dist_info} DESTINATION ${agentsup_python_dir})

# --- the configuration directory the unit and the container image read
# (empty: the package starts nothing by itself), and the docs.
# /etc for the package (prefix /usr); else below the prefix, as given to
# cmake --install --prefix too. agentsup_conf_dir: the same, absolute, for
# the unit to name.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(agentsup_etc_dir ${CMAKE_INSTALL_FULL_SYSCONFDIR})
  set(agentsup_conf_dir ${CMAKE_INSTALL_FULL_SYSCONFDIR})
elseif(IS_ABSOLUTE "${CMAKE_INSTALL_SYSCONFDIR}")
  set(agentsup_etc_dir ${CMAKE_INSTALL_SYSCONFDIR})
  set(agentsup_conf_dir ${CMAKE_INSTALL_SYSCONFDIR})
else()
  set(agentsup_etc_dir ${CMAKE_INSTALL_SYSCONFDIR})
  # not CMAKE_INSTALL_FULL_SYSCONFDIR: for /opt/P it is /etc/opt/P, where
  # nothing is installed (the directory stays inside the prefix)
  set(agentsup_conf_dir ${CMAKE_INSTALL_PREFIX}/${CMAKE_INSTALL_SYSCONFDIR})
endif()
set(agentsup_conf_dir ${agentsup_conf_dir}/agentsup/supervisor.d)
install(DIRECTORY DESTINATION ${agentsup_etc_dir}/agentsup/supervisor.d)
install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
  FILES_MATCHING PATTERN "*.md")

# --- the systemd unit (deploy/systemd/agentsupd.service.in) with the paths
# of this prefix, as configured: agentsupd, agentsupctl, the config
# directory above (a unit that said /etc/agentsup/supervisor.d whatever the
# prefix ran agentsupd on a directory nothing installed). An install-time
# --prefix moves the file, not what it names. Debian 12 packages ship units
# in /lib/systemd/system; under another prefix it stays inside it. Its own
# component, so that a test can install it alone.
set(AGENTSUP_UNIT_SBINDIR ${CMAKE_INSTALL_FULL_SBINDIR})
set(AGENTSUP_UNIT_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
set(AGENTSUP_UNIT_CONFDIR ${agentsup_conf_dir})
configure_file(${CMAKE_SOURCE_DIR}/deploy/systemd/agentsupd.service.in
  ${CMAKE_BINARY_DIR}/systemd/agentsupd.service @ONLY)
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(agentsup_unit_dir /lib/systemd/system)
else()
  set(agentsup_unit_dir lib/systemd/system)
endif()
install(FILES ${CMAKE_BINARY_DIR}/systemd/agentsupd.service
  DESTINATION ${agentsup_unit_dir} COMPONENT systemd)

# --- CPack: one Debian package, agentsup_VERSION_ARCH.deb in the build dir.
set(CPACK_PACKAGE_NAME agentsup)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(AGENTSUP_MAINTAINER "agentsup developers <agentsup@invalid>" CACHE STRING
  "the Debian package's Maintainer field")
set(CPACK_PACKAGE_CONTACT "${AGENTSUP_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Erlang/OTP-style supervision trees for AI agent workers")
set(CPACK_PACKAGE_DESCRIPTION
"agentsupd reads a supervision tree from supervisor.d/*.yaml, forks the
workers and watches their exits and heartbeats; when one fails, its
supervisor restarts it by strategy (one_for_one, one_for_all, rest_for_one)
within a restart intensity, and escalates when that is spent. Agent-specific
policies: backoff, circuit breakers, stall and loop detection, budgets,
checkpoints. agentsupctl inspects and steers a running tree.
.
This package holds agentsupd, agentsupctl, libagentsup (the C worker
client: shared and static library, headers, pkg-config file), the Python
worker client, the systemd unit, man pages and bash completion.")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR})
# Install into a staging DESTDIR with the configured prefix, so that the
# absolute unit directory lands in the package and never on this machine.
set(CPACK_SET_DESTDIR ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# What no ELF file shows to dpkg-shlibdeps: the Python client's needs and
# SQLite, which agentsupd loads (sqlib.c) only when a state_dir is set.
# libyaml, which agentsupd loads (yamlib.c) only while it parses a config,
# dpkg-shlibdeps finds in agentsupctl (test_package checks it is there,
# once: listed here too, it was listed twice).
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libsqlite3-0 (>= 3.20), python3, python3-msgpack")
find_program(DPKG_SHLIBDEPS_EXECUTABLE dpkg-shlibdeps)
find_program(FILE_EXECUTABLE file)
if(DPKG_SHLIBDEPS_EXECUTABLE AND FILE_EXECUTABLE)
  set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
else()
  # What dpkg-shlibdeps finds on Debian 12, written down for machines
  # without dpkg-dev.
  set(CPACK_DEBIAN_PACKAGE_DEPENDS
    "libc6 (>= 2.34), libev4 (>= 1:4.04), libmsgpackc2 (>= 2.1.0), libncursesw6 (>= 6), libtinfo6 (>= 6), libyaml-0-2, ${CPACK_DEBIAN_PACKAGE_DEPENDS}")
endif()
# agentsup/wire.h, for clients that speak the protocol themselves, includes
# msgpack.h; agent.h needs nothing more than this package.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libmsgpack-dev")
# A shlibs file for libagentsup.so.0, and ldconfig run by postinst/postrm.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_SOURCE_DIR}/cmake/debian/postinst
  ${CMAKE_SOURCE_DIR}/cmake/debian/prerm
  ${CMAKE_SOURCE_DIR}/cmake/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
set(CPACK_GENERATOR DEB)
set(CPACK_SOURCE_GENERATOR TGZ)
set(CPACK_SOURCE_IGNORE_FILES "/\\\\.git/" "/build[^/]*/" "__pycache__")
include(CPack)
