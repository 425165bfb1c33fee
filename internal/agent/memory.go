package agent

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// releaseStartupMemory hands back to the kernel what only start-up needed, once the first sync
// is done. imdsguard is one binary with every command in it, and Go runs the initialisation of
// every package it links — the Kubernetes API types and client register hundreds of types, an
// empty program importing the client alone holds about 21 MiB — before main: that leaves tens of
// MiB of the executable's pages mapped that the agent never touches again. They are clean copies
// of the file, so MADV_PAGEOUT drops them at no risk (a page needed later is read back in); the
// heap's start-up garbage goes back with debug.FreeOSMemory. It returns the resident set before
// and after, in kB (0 when unknown). Kernels before 5.4 lack MADV_PAGEOUT: the heap part still
// applies.
func releaseStartupMemory() (before, after int64) {
	before = residentKB()
	debug.FreeOSMemory()
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return before, residentKB()
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return before, residentKB()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// START-END PERMS OFFSET DEV INODE PATH
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue // only the executable's read-only mappings: text and read-only data
		}
		lo, hi, _ := strings.Cut(fields[0], "-")
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// A raw system call: the range is not Go memory, so there is no slice to hand to
		// unix.Madvise.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_PAGEOUT)
	}
	return before, residentKB()
}

// residentKB returns this process's VmRSS in kB, or 0.
func residentKB() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(v); len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
