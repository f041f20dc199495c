# askr — make targets. `make run` and `make test` work on a fresh Debian 12 machine as root:
# each installs what it needs first (make deps).
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(HOME)/go/bin:$(PATH)
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo 0.1.0-dev)
LDFLAGS := -X github.com/askr-php/askr/internal/version.Version=$(VERSION)
LISTEN ?= 127.0.0.1:8000
WORKERS ?= auto

# Debian packages the server, the examples and the tests use.
APT_PACKAGES := php8.2-cgi php8.2-cli php8.2-sqlite3 php8.2-mbstring php8.2-xml php-laravel-framework php8.2-dev php-symfony-framework-bundle php-symfony-mime
# Only for `make bench` (the php-fpm baseline and the load generator).
BENCH_PACKAGES := nginx-light php8.2-fpm wrk
# Only for `make test`: promtool (Debian's prometheus package), which internal/metrics' tests check
# a scrape with, and Chromium, headless, which renders the admin dashboard in its test
# (internal/integration/dashboard_test.go), and pebble, the ACME test CA the certificate tests
# obtain certificates from (internal/certificate, internal/integration/acme_test.go).
TEST_PACKAGES := prometheus chromium pebble

.PHONY: all build run test test-go test-php bench lint deps deps-test deps-bench deps-e2e deps-lint e2e-systemd e2e-deb clean fuzz

# $(call apt-install,PACKAGES): a recipe line installing those of the Debian PACKAGES that are
# missing, with one apt-get run (none when all are there).
apt-install = missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; fi

all: build

build: ext
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/askrd ./cmd/askrd
	ln -sf askrd bin/askr

# askr's PHP extension (ext/askr), built out of tree in build/ext/src against php8.2-dev; askrd
# started as bin/askrd finds build/ext/askr.so ([worker] extension = "auto").
.PHONY: ext
ext: build/ext/askr.so

build/ext/askr.so: $(wildcard ext/askr/*)
	@command -v phpize >/dev/null || { echo "phpize not found: the extension needs php8.2-dev (make deps)"; exit 1; }
	rm -rf build/ext/src && mkdir -p build/ext && cp -r ext/askr build/ext/src
	cd build/ext/src && { phpize >phpize.log 2>&1 || { cat phpize.log; exit 1; }; } && \
		./configure --quiet CFLAGS='-O2 -g -Wall' >/dev/null && $(MAKE) --no-print-directory -s >/dev/null
	cp build/ext/src/modules/askr.so $@.tmp && mv $@.tmp $@

deps:
	@$(call apt-install,$(APT_PACKAGES))
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed (expected in /usr/local/go/bin)"; exit 1; }
	$(GO) mod download

deps-test: deps
	@$(call apt-install,$(TEST_PACKAGES))

deps-bench: deps
	@$(call apt-install,$(BENCH_PACKAGES))

# The WordPress acceptance tests (internal/integration/wordpress_test.go): Debian's WordPress with
# its default theme (a Recommends, so named here: without a theme the front page is empty), a
# MariaDB the tests start privately (the system service stays unused), PHP's MySQL driver, and
# nginx + php-fpm as the reference server.
WORDPRESS_PACKAGES := wordpress wordpress-theme-twentytwentythree mariadb-server php8.2-mysql nginx-light php8.2-fpm
# And TestLvCowPg's: the Laravel test app on a PostgreSQL cluster the test starts privately.
WORDPRESS_PACKAGES += postgresql-15 php8.2-pgsql

.PHONY: deps-wordpress

deps-wordpress: deps
	@$(call apt-install,$(WORDPRESS_PACKAGES))

# Serves the bundled Laravel example on $(LISTEN).
run: deps build
	ASKR_APP_BASE=$(CURDIR)/examples/laravel ./bin/askr serve --root examples/laravel/public \
		--worker-script examples/laravel-worker.php --workers $(WORKERS) --listen $(LISTEN)

test: deps deps-wordpress deps-test build
	$(GO) vet ./...
	@unformatted=$$(gofmt -l cmd internal); if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	$(GO) test -race -count=1 -timeout 25m ./...
	@echo "== the integration suite again, in CoW template mode =="
	ASKR_TEST_COW=1 $(GO) test -race -count=1 -timeout 25m ./internal/integration/

fuzz:
	$(GO) test ./internal/channel -run '^$$' -fuzz FuzzReadFrame -fuzztime 30s
	$(GO) test ./internal/fastcgi -run '^$$' -fuzz FuzzReadRecord -fuzztime 30s

# deps-wordpress: the classic-wordpress scenario (Debian's WordPress on a private MariaDB).
# cmd/askr-bench measures and writes docs/bench.md; BENCH_FLAGS='-quick -scenarios hello' checks it
# works (askr-bench -h lists the knobs).
bench: deps-bench deps-wordpress build
	$(GO) build -o bin/askr-bench ./cmd/askr-bench
	./bin/askr-bench $(BENCH_FLAGS)

# Static checks: go vet, staticcheck, and shellcheck over the shell scripts (bench's only while
# it has some).
STATICCHECK := $(HOME)/go/bin/staticcheck
STATICCHECK_VERSION := 0.8.2
SHELL_SCRIPTS = $(wildcard test/*.sh bench/*.sh) $(shell find packaging -name '*.sh') \
	packaging/debian/askr.postinst packaging/debian/askr.prerm packaging/debian/askr.postrm .ci/run

lint: deps-lint
	$(GO) vet ./...
	$(STATICCHECK) ./...
	shellcheck $(SHELL_SCRIPTS)

deps-lint:
	@$(call apt-install,shellcheck)
	@$(STATICCHECK) -version 2>/dev/null | grep -qF '($(STATICCHECK_VERSION))' || \
		GOBIN=$(HOME)/go/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@v$(STATICCHECK_VERSION)

clean:
	rm -rf bin bench/out build/ext

# End to end under real systemd in a throwaway Debian 12 container (systemd-nspawn).
deps-e2e:
	@$(call apt-install,debootstrap systemd-container)

e2e-systemd: deps-e2e build
	bash test/e2e-systemd.sh

# The container test under CPU load, RUNS times in a row (issue 12: it must not flake): `stress`
# keeps both CPUs busy beside each run; the first red run stops the series.
RUNS ?= 10
.PHONY: e2e-systemd-stress
e2e-systemd-stress: deps-e2e build
	@$(call apt-install,stress)
	@for i in $$(seq 1 $(RUNS)); do \
		stress --cpu 2 --timeout 600 >/dev/null 2>&1 & load=$$!; \
		bash test/e2e-systemd.sh >build/e2e-stress-$$i.log 2>&1; rc=$$?; \
		pkill -TERM -P $$load; kill $$load 2>/dev/null; wait $$load 2>/dev/null; \
		if [ $$rc != 0 ]; then echo "run $$i of $(RUNS): FAILED (build/e2e-stress-$$i.log)"; tail -20 build/e2e-stress-$$i.log; exit 1; fi; \
		echo "run $$i of $(RUNS): $$(tail -1 build/e2e-stress-$$i.log)"; \
	done

# The Debian package: build/deb/askr_<version>_amd64.deb, built with dpkg-buildpackage in a copy of
# the tree (build/deb/src, packaging/debian as debian/, Go modules vendored so the build is offline),
# then checked with lintian. Sources: packaging/debian, packaging/man, packaging/welcome.
DEB_PACKAGES := debhelper dpkg-dev fakeroot lintian man-db php8.2-dev

.PHONY: deb deps-deb

deps-deb:
	@$(call apt-install,$(DEB_PACKAGES))
	@command -v $(GO) >/dev/null || { echo "Go 1.26 is needed (expected in /usr/local/go/bin)"; exit 1; }

deb: deps-deb
	bash packaging/build-deb.sh

# `apt install askr` end to end in throwaway Debian 12 containers: the package built twice (an
# install and an upgrade), apt fetching php-cgi from the archive, Laravel, upgrade under load,
# purge, port 80 taken (test/e2e-deb.sh); maintainer-script details (packaging/test-deb.sh).
e2e-deb: deps-e2e deps-deb
	$(MAKE) --no-print-directory deb ASKR_DEB_VERSION=0.1.0-2 >/dev/null
	cp build/deb/askr_0.1.0-2_amd64.deb build/askr-upgrade.deb
	$(MAKE) --no-print-directory deb >/dev/null
	cp build/deb/askr_0.1.0-1_amd64.deb build/askr-install.deb
	OLD_DEB=build/askr-install.deb NEW_DEB=build/askr-upgrade.deb bash test/e2e-deb.sh
	@[ -d build/rootfs ] || $(MAKE) --no-print-directory e2e-systemd
	bash packaging/test-deb.sh
