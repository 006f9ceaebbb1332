// main.go - a Go program that builds heaps of slices and maps and gives
// them back to the OS, round after round (room: tests): tests/
// test_preload_programs.sh's go case runs it under dsm-run.  Linked with
// cgo (the import of "C"), so that it loads the C library and the shim;
// a static Go binary never would.  Prints the rounds and a checksum.
package main

// #include <stdlib.h>
import "C"

import (
	"crypto/sha256"
	"fmt"
	"runtime/debug"
)

func main() {
	h := sha256.New()
	for round := 0; round < 10; round++ {
		m := map[int][]byte{}
		for i := 0; i < 100; i++ {
			b := make([]byte, 1<<20)
			for j := 0; j < len(b); j += 512 {
				b[j] = byte(i + j + round)
			}
			m[i] = b
		}
		for i := 0; i < 100; i++ {
			h.Write(m[i][:4096])
		}
		m = nil
		// what Go's scavenger does in time, at once:
		// madvise(MADV_DONTNEED) on the freed heap
		debug.FreeOSMemory()
	}
	fmt.Printf("10 rounds %x\n", h.Sum(nil))
}
