// main.go - a Go program whose heap outgrows the local budget, and which
// gives memory back to the OS as Go does (room: tests):
// tests/test_preload_programs.sh's go case runs it under dsm-run.
// Linked with cgo (the import of "C"), so that it loads the C library and
// the shim; a static Go binary never would.
//
// It keeps 400 MB live (slices of bytes and a map of them), checksums
// all of it twice, then builds and frees heaps round after round,
// calling debug.FreeOSMemory: what Go's scavenger does in time, at once
// (a raw madvise(MADV_DONTNEED) on the freed heap, which the shim never
// sees).  Prints the checksums.
package main

// #include <stdlib.h>
import "C"

import (
	"crypto/sha256"
	"fmt"
	"runtime/debug"
)

const mib = 1 << 20

func fill(b []byte, seed int) {
	for j := 0; j < len(b); j += 64 {
		b[j] = byte(seed*31 + j/64)
	}
}

func sum(live map[int][]byte, n int) string {
	h := sha256.New()
	for i := 0; i < n; i++ {
		h.Write(live[i])
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func main() {
	const n = 400
	live := make(map[int][]byte, n)
	for i := 0; i < n; i++ {
		b := make([]byte, mib)
		fill(b, i)
		live[i] = b
	}
	fmt.Printf("live %d MiB %s\n", n, sum(live, n))

	h := sha256.New()
	for round := 0; round < 6; round++ {
		m := map[int][]byte{}
		for i := 0; i < 100; i++ {
			b := make([]byte, mib)
			fill(b, i+round)
			m[i] = b
		}
		for i := 0; i < 100; i++ {
			h.Write(m[i][:4096])
		}
		m = nil
		debug.FreeOSMemory()
	}
	fmt.Printf("6 rounds %x\n", h.Sum(nil))
	fmt.Printf("live again %s\n", sum(live, n))
}
