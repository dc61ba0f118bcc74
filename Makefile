# SPDX-License-Identifier: GPL-2.0
#
# nft-tproxy: out-of-tree tproxy and socket nf_tables expressions.
#
#   make [KVER=<release> | KDIR=<tree>]   build the modules
#   make install / uninstall              into /lib/modules/<release>/updates
#   make deps                             what tests and demo need (Debian 12)
#   make check                            deps, lint, build, selftests in VMs
#   make vm-test KVER=<release> [TESTS="a.sh b.sh"] [MODE=ours|intree]
#   make demo                             the transparent proxy in a VM
#   make lint                             checkpatch --strict, sparse, W=1, shellcheck
#   make docs                             Documentation/ as HTML in build/docs
#   make matrix                           the suite on 5.10, 6.1, 6.12, 7.2, a
#                                         kernel without any tproxy support and
#                                         a debug kernel; churn on 4 vCPUs,
#                                         the fuzzers at full size
#   make debug-test                       only the debug kernel (KASAN, kmemleak,
#                                         lockdep, ...) of make matrix
#   make userspace                        libnftnl and nft with our patch series:
#                                         build, unit tests, tests/py in VMs
#   make userspace-install [PREFIX=/usr/local]  install them (DESTDIR honoured)
#   make bench [KVER=<release>]           what interception costs, every variant
#                                         side by side (build/bench/results.md)
#   make help

TOP := $(CURDIR)

ifneq ($(KDIR),)
KVER ?= $(shell cat $(KDIR)/include/config/kernel.release 2>/dev/null)
else
KVER ?= $(shell uname -r)
# The installed headers of KVER, else those make deps unpacked into its
# kernel cache (the test kernels are never installed).
NFT_TPROXY_KERNELS ?= /var/lib/nft-tproxy/kernels
KDIR := $(or $(wildcard /lib/modules/$(KVER)/build/Makefile),$(wildcard $(NFT_TPROXY_KERNELS)/$(KVER)/img/usr/src/linux-headers-$(KVER)/Makefile))
KDIR := $(if $(KDIR),$(patsubst %/Makefile,%,$(KDIR)),/lib/modules/$(KVER)/build)
endif

VERSION := $(shell cat $(TOP)/VERSION)
GIT_VERSION := $(shell GIT_CEILING_DIRECTORIES="$(TOP)/.." \
		 git -C $(TOP) describe --always --dirty 2>/dev/null)
NFT_TPROXY_VERSION := $(VERSION)$(if $(GIT_VERSION),+g$(GIT_VERSION))

BUILD := $(TOP)/build/$(KVER)/kernel
SOURCES := $(wildcard $(TOP)/kernel/*.c $(TOP)/kernel/*.h) $(TOP)/kernel/Kbuild \
	   $(TOP)/kernel/include
INSTALL_MOD_DIR ?= updates
DEPMOD ?= depmod
MODULES := nft_tproxy nft_socket

KBUILD_ARGS := -C $(KDIR) M=$(BUILD) NFT_TPROXY_GENDIR=$(BUILD) \
	       NFT_TPROXY_VERSION=$(NFT_TPROXY_VERSION)

all: modules

kdir-check:
	@test -f "$(KDIR)/Makefile" || { echo "nft-tproxy: no kernel build tree at '$(KDIR)' ($(if $(KVER),install linux-headers-$(KVER) or )pass KDIR=<tree> or KVER=<release>)"; exit 1; }

$(BUILD)/compat_autoconf.h: $(TOP)/kernel/compat/gen-compat.sh | kdir-check
	@mkdir -p $(BUILD)
	@echo "  PROBE   compat for $(KVER)"
	@$(TOP)/kernel/compat/gen-compat.sh $(KDIR) $(BUILD)

# Kbuild writes its objects next to the sources: link them into a build
# directory per kernel, so that several kernels build from one tree.
links: | kdir-check
	@mkdir -p $(BUILD)
	@for f in $(SOURCES) $(TOP)/kernel/compat; do ln -sfn "$$f" $(BUILD)/; done
	@find $(BUILD) -maxdepth 1 -xtype l -delete

modules: links $(BUILD)/compat_autoconf.h
	$(MAKE) $(KBUILD_ARGS) modules

# Lint builds: sparse and W=1, warnings are errors.
modules-check: links $(BUILD)/compat_autoconf.h
	$(MAKE) $(KBUILD_ARGS) clean >/dev/null
	$(MAKE) $(KBUILD_ARGS) W=1 C=2 CF="-D__CHECK_ENDIAN__" \
		KCFLAGS=-Werror modules 2>&1 | tee $(BUILD)/lint.log
	@! grep -E 'warning:|error:' $(BUILD)/lint.log

install: modules
	$(MAKE) $(KBUILD_ARGS) INSTALL_MOD_DIR=$(INSTALL_MOD_DIR) \
		INSTALL_MOD_PATH=$(DESTDIR) modules_install
	$(DEPMOD) -b "$(or $(DESTDIR),/)" -a $(KVER)
	@for m in $(MODULES); do \
		if grep -q "^$$m " /proc/modules 2>/dev/null && \
		   [ "$$(cat /sys/module/$$m/version 2>/dev/null)" != "$(NFT_TPROXY_VERSION)" ]; then \
			echo "nft-tproxy: another $$m is loaded and keeps serving its rules: flush them and 'rmmod $$m' (or reboot) so that ours is loaded"; \
		fi; \
	done

uninstall:
	rm -f $(foreach m,$(MODULES),$(foreach z,.ko .ko.xz .ko.zst .ko.gz, \
	      $(DESTDIR)/lib/modules/$(KVER)/$(INSTALL_MOD_DIR)/$(m)$(z)))
	$(DEPMOD) -b "$(or $(DESTDIR),/)" -a $(KVER)

deps:
	@$(TOP)/scripts/deps.sh

lint:
	@$(TOP)/scripts/lint.sh

check:
	@$(TOP)/scripts/check.sh

vm-test:
	@$(TOP)/scripts/vm-test.sh $(if $(MODE),--mode $(MODE)) $(KVER) $(TESTS)

matrix:
	@$(TOP)/scripts/matrix.sh

debug-test:
	@MATRIX_LANES=debug $(TOP)/scripts/matrix.sh

# Sphinx from Debian (make deps); any warning fails the build.
docs:
	@command -v sphinx-build >/dev/null || \
		{ echo "docs: sphinx-build not found: make deps"; exit 1; }
	sphinx-build -W --keep-going -q -b html $(TOP)/Documentation $(TOP)/build/docs
	@echo "docs: $(TOP)/build/docs/index.html"

version:
	@echo $(NFT_TPROXY_VERSION)

userspace:
	@$(TOP)/scripts/userspace.sh

userspace-install:
	@$(TOP)/scripts/userspace.sh --install

bench:
	@$(TOP)/scripts/bench.sh $(if $(filter command line,$(origin KVER)),$(KVER))

demo:
	@$(TOP)/scripts/demo.sh $(if $(filter command line,$(origin KVER)),$(KVER))

clean:
	rm -rf $(TOP)/build
	$(MAKE) -C $(TOP)/selftests clean

help:
	@sed -n '3,24p' $(TOP)/Makefile | sed 's/^# \{0,1\}//'

.PHONY: all kdir-check links modules modules-check install uninstall deps \
	lint check vm-test matrix debug-test docs version demo clean help userspace \
	userspace-install bench
