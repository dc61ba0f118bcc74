#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Claim: for TCP, IPv4 and IPv6, forwarded and locally generated, the tproxy
# expression delivers a flow to a transparent listener on the gateway, which
# sees the client's own address and the original destination, and the
# flow's later packets follow its socket; a non-transparent listener is
# passed over, and with no listener the packet goes on unchanged.
#
#   client ---- gw (tproxy_echo :8080, transparent) ---- server (tproxy_echo :80)
#
# The topology, the ruleset and the scenarios are in tproxy_traffic.sh.

source "$(dirname "$(readlink -f "$0")")/lib.sh"
source "$SELFTEST_DIR/tproxy_traffic.sh"

tproxy_scenarios tcp

exit "$ret"
