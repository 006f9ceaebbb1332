#!/usr/bin/env bash
# What the README promises a library user: `cmake --install` puts dsm.h,
# libdsm and dsm.pc under a prefix, and a program built with
# `pkg-config --cflags --libs dsm` runs against a dsm-server.
#   test_install.sh BUILD_DIR [CFLAGS]   (CFLAGS: a sanitized build's flag)
set -euo pipefail
build=$1
extra=${2:-}
tmp=$(mktemp -d /tmp/dsm-install-test.XXXXXX)
server=""
trap '[ -n "$server" ] && kill "$server" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
export PKG_CONFIG_PATH=$(dirname "$(find "$tmp/prefix" -name dsm.pc)")
cat >"$tmp/app.c" <<'C'
#include <dsm.h>
#include <stdint.h>
#include <stdio.h>
int main(void)
{
	int err = dsm_init(NULL);
	if (err) {
		fprintf(stderr, "dsm_init: %s\n", dsm_strerror(err));
		return 1;
	}
	uint64_t *v = dsm_alloc(32UL << 20);
	for (uint64_t i = 0; i < (32UL << 20) / 8; i += 512)
		v[i] = i * 3;
	for (uint64_t i = 0; i < (32UL << 20) / 8; i += 512)
		if (v[i] != i * 3)
			return 2;
	struct dsm_stats st;
	dsm_stats(&st);
	dsm_free(v);
	dsm_shutdown();
	return st.pages_evicted > 0 ? 0 : 3; /* it really paged */
}
C
# shellcheck disable=SC2046,SC2086
cc $extra "$tmp/app.c" $(pkg-config --cflags --libs dsm) \
   -Wl,-rpath,"$(pkg-config --variable=libdir dsm)" -o "$tmp/app"

"$tmp/prefix/bin/dsm-server" --listen 127.0.0.1:0 --capacity 256M \
   --port-file "$tmp/port" 2>"$tmp/server.log" &
server=$!
for _ in $(seq 100); do [ -s "$tmp/port" ] && break; sleep 0.1; done
DSM_SERVERS=127.0.0.1:$(cat "$tmp/port") DSM_LOCAL_MEM=4M "$tmp/app"
echo "install: ok"
