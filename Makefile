# The appliance's two front doors: `make run` and `make test` (see README.md).
# Both work on a fresh Debian bookworm machine as root (or with sudo): they install the
# system packages they need, make .venv from the system Python and install the package.

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DATA_DIR ?= $(CURDIR)/data
CONFIG ?=
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_GET := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600

# What the appliance needs to build and run.
RUN_PACKAGES := python3 python3-venv python3-dev gcc pkg-config librrd-dev rrdtool rrdcached \
	libvirt-dev lm-sensors libsnmp-base erlang-snmp
# What the tests need besides: real agents, a real hypervisor, a real browser, lint tools.
TEST_PACKAGES := snmpd snmp libvirt-clients libvirt-daemon libvirt-daemon-driver-qemu \
	qemu-system-x86 qemu-utils chromium fonts-dejavu-core packer mmdebstrap ruby fdisk curl \
	openssh-client systemd python3-pysnmp4-mibs redis-server etcd-server victoria-metrics \
	prometheus collectd-core zookeeper

.PHONY: run test lint screenshots bench deps-run deps-test venv venv-run image image-test clean

run: deps-run venv-run
	$(VENV)/bin/appliance run --data-dir $(DATA_DIR) $(if $(CONFIG),--config $(CONFIG))

# Two test processes, each taking whole files (module fixtures stay per file): most tests
# wait on real services, so two halve the time on two cores. A short base directory of its
# own per run: xdist nests each process's temporary directories one level deeper, and an
# appliance's data dir must leave room for its unix sockets (config.SOCKET_PATH_MAX).
test: deps-test venv
	$(VENV)/bin/ruff check appliance tests benchmarks
	$(VENV)/bin/pytest -q -ra --durations=15 -n 2 --dist loadfile --basetemp=$$(mktemp -d /tmp/at.XXXXXX)

lint: venv
	$(VENV)/bin/ruff check appliance tests benchmarks

# Retake the README's screenshots (docs/*.png) with the browser test.
screenshots: deps-test venv
	UPDATE_SCREENSHOTS=1 $(VENV)/bin/pytest -q tests/test_ui_browser.py

bench: deps-test venv
	for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

deps-run: .stamps/apt-run
deps-test: .stamps/apt-run .stamps/apt-test

.stamps/apt-run:
	$(APT_GET) update -q
	$(APT_GET) install -y -q --no-install-recommends $(RUN_PACKAGES)
	mkdir -p .stamps && touch $@

.stamps/apt-test:
	$(APT_GET) update -q
	$(APT_GET) install -y -q --no-install-recommends $(TEST_PACKAGES)
	mkdir -p .stamps && touch $@

# The venv is made from Debian's Python (/usr/bin/python3), not a user's pyenv build, so
# that processes dropped to another user can use it too.
venv-run: $(VENV)/.installed-run
venv: $(VENV)/.installed-test

$(VENV)/.installed-run: pyproject.toml
	[ -x $(PY) ] || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml
	[ -x $(PY) ] || /usr/bin/python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed-run

image: deps-test venv
	packer/build-image.sh

image-test:
	packer/test-image.sh

clean:
	rm -rf $(VENV) .stamps build dist *.egg-info
