#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: with the reference proxy on the gateway, over TCP, IPv4 and IPv6,
# each of the four setups of the seed scenario shows the server the address
# it promises: the proxy's for a plain relay and for -t, the client's own
# for -T and -t -T (the server's answers to the client's address return
# through the gateway to the proxy's transparent upstream socket).
#
#   Y (client) ---- X (tproxy-relay :8080) ---- Z (tproxy_echo :80)
#
# The setups and the checks are in relay_scenarios.sh.

source "$(dirname "$(readlink -f "$0")")/lib.sh"
source "$SELFTEST_DIR/relay_scenarios.sh"

relay_scenarios tcp

exit "$ret"
